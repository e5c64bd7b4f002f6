//! Throw-away topologies in network namespaces, for the demo and the tests:
//! namespaces and veth pairs with names unique to the run, processes started
//! inside them, and a `Drop` that stops the processes and deletes the
//! namespaces (which removes every interface in them) even when a test fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A set of namespaces and processes, removed on drop.
#[derive(Debug)]
pub struct Lab {
    tag: String,
    namespaces: Vec<String>,
    children: Vec<(String, Child)>,
    dir: PathBuf,
    /// `/etc/netns/<ns>` folders made for namespaces, removed on drop.
    etc_dirs: Vec<PathBuf>,
    /// Pid files of processes started outside the lab (by a hook), killed
    /// on drop if they still run.
    pid_files: Vec<PathBuf>,
}

/// Runs a command; fails with its stderr if it fails.
pub fn cmd(args: &[&str]) -> Result<String> {
    let (prog, rest) = args.split_first().context("empty command")?;
    let out = Command::new(prog)
        .args(rest)
        .output()
        .with_context(|| format!("running {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "`{}` failed ({}): {} {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Lab {
    /// A new, empty lab. `prefix` (a few letters) starts every name.
    pub fn new(prefix: &str) -> Result<Lab> {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tag = format!("{prefix}{}x{n}", std::process::id() % 100_000);
        let dir = std::env::temp_dir().join(format!("xbond-lab-{tag}"));
        std::fs::create_dir_all(&dir)?;
        Ok(Lab {
            tag,
            namespaces: Vec::new(),
            children: Vec::new(),
            dir,
            etc_dirs: Vec::new(),
            pid_files: Vec::new(),
        })
    }

    /// The run-unique tag in every name.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// A folder for this lab's files, removed on drop.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Creates namespace `xb-<tag>-<role>` with loopback up; returns its name.
    pub fn netns(&mut self, role: &str) -> Result<String> {
        let name = format!("xb-{}-{role}", self.tag);
        cmd(&["ip", "netns", "add", &name])?;
        self.namespaces.push(name.clone());
        cmd(&["ip", "-n", &name, "link", "set", "lo", "up"])?;
        Ok(name)
    }

    /// A veth pair `a` (in `ns_a`) <-> `b` (in `ns_b`), both up.
    pub fn veth(&self, ns_a: &str, a: &str, ns_b: &str, b: &str) -> Result<()> {
        cmd(&[
            "ip", "-n", ns_a, "link", "add", a, "type", "veth", "peer", "name", b, "netns", ns_b,
        ])?;
        cmd(&["ip", "-n", ns_a, "link", "set", a, "up"])?;
        cmd(&["ip", "-n", ns_b, "link", "set", b, "up"])?;
        Ok(())
    }

    /// `/etc/netns/<ns>/`, made empty: `ip netns exec` bind-mounts what is in
    /// it over `/etc` (e.g. a `network/` folder over `/etc/network`) for the
    /// commands it runs in `ns`. Removed on drop.
    pub fn etc_dir(&mut self, ns: &str) -> Result<PathBuf> {
        let d = PathBuf::from("/etc/netns").join(ns);
        std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
        self.etc_dirs.push(d.clone());
        Ok(d)
    }

    /// Kills the process named in `pid_file` on drop, if it still runs (a
    /// daemon that a hook started, when a test fails before stopping it).
    pub fn track_pid_file(&mut self, pid_file: PathBuf) {
        self.pid_files.push(pid_file);
    }

    /// Runs a command inside `ns` and returns its stdout.
    pub fn exec(&self, ns: &str, args: &[&str]) -> Result<String> {
        let mut all = vec!["ip", "netns", "exec", ns];
        all.extend_from_slice(args);
        cmd(&all)
    }

    /// Starts a long-running process inside `ns`, with output to a log file
    /// in the lab folder; returns the log's path.
    pub fn spawn(&mut self, ns: &str, name: &str, args: &[&str]) -> Result<PathBuf> {
        let log = self.dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log)?;
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args)
            .stdout(Stdio::from(file.try_clone()?))
            .stderr(Stdio::from(file))
            .spawn()
            .with_context(|| format!("starting {}", args.join(" ")))?;
        self.children.push((name.to_string(), child));
        Ok(log)
    }

    /// Sends SIGTERM to process `name` and waits up to 5 s for it to exit;
    /// returns whether it exited successfully.
    pub fn stop(&mut self, name: &str) -> Result<bool> {
        let Some(pos) = self.children.iter().position(|(n, _)| n == name) else {
            bail!("no process {name} in this lab");
        };
        let (_, mut child) = self.children.remove(pos);
        Ok(terminate(&mut child))
    }

    /// Kills process `name` with SIGKILL (a crash) and reaps it.
    pub fn kill(&mut self, name: &str) -> Result<()> {
        let Some(pos) = self.children.iter().position(|(n, _)| n == name) else {
            bail!("no process {name} in this lab");
        };
        let (_, mut child) = self.children.remove(pos);
        child.kill().context("kill -9")?;
        child.wait().context("reaping")?;
        Ok(())
    }

    /// Whether process `name` is still running.
    pub fn running(&mut self, name: &str) -> bool {
        self.children
            .iter_mut()
            .find(|(n, _)| n == name)
            .is_some_and(|(_, c)| matches!(c.try_wait(), Ok(None)))
    }
}

fn terminate(child: &mut Child) -> bool {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(st)) = child.try_wait() {
            return st.success();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    false
}

impl Drop for Lab {
    fn drop(&mut self) {
        for (_, c) in &mut self.children {
            terminate(c);
        }
        for f in self.pid_files.drain(..) {
            if let Ok(pid) = std::fs::read_to_string(&f) {
                let _ = Command::new("kill").args(["-KILL", pid.trim()]).status();
            }
        }
        for ns in self.namespaces.drain(..).rev() {
            let _ = Command::new("ip").args(["netns", "del", &ns]).status();
        }
        for d in self.etc_dirs.drain(..) {
            let _ = std::fs::remove_dir_all(d);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Waits until `f` returns `Some`, up to `timeout`.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Lab {
    /// Waits for process `name` to exit (up to `timeout`) and returns its log.
    pub fn wait(&mut self, name: &str, timeout: Duration) -> Result<String> {
        let Some(pos) = self.children.iter().position(|(n, _)| n == name) else {
            bail!("no process {name} in this lab");
        };
        let child = &mut self.children[pos].1;
        if wait_for(timeout, || {
            matches!(child.try_wait(), Ok(Some(_))).then_some(())
        })
        .is_none()
        {
            bail!("{name} did not finish within {timeout:?}");
        }
        self.children.remove(pos);
        Ok(std::fs::read_to_string(
            self.dir.join(format!("{name}.log")),
        )?)
    }

    /// The process id of process `name` (the command itself: `ip netns exec`
    /// execs it).
    pub fn pid(&self, name: &str) -> Option<u32> {
        self.children
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, c)| c.id())
    }

    /// Writes `config` to the lab folder and starts `xbond run` with it in
    /// `ns` as process `name`; waits until its control socket answers and
    /// returns the socket path. `exe` is the xbond binary.
    pub fn start_xbond(
        &mut self,
        exe: &Path,
        ns: &str,
        name: &str,
        config: &str,
    ) -> Result<String> {
        self.start_xbond_with(exe, ns, name, config, &[])
    }

    /// As [`Lab::start_xbond`], with extra arguments to `xbond run`.
    pub fn start_xbond_with(
        &mut self,
        exe: &Path,
        ns: &str,
        name: &str,
        config: &str,
        extra: &[&str],
    ) -> Result<String> {
        let sock = self.dir.join(format!("{name}.sock")).display().to_string();
        let cfg_path = self.dir.join(format!("{name}.toml"));
        std::fs::write(
            &cfg_path,
            format!("{config}\ncontrol_socket = \"{sock}\"\n"),
        )?;
        let exe = exe.display().to_string();
        let cfg_arg = cfg_path.display().to_string();
        let mut args = vec![exe.as_str(), "run", "--config", cfg_arg.as_str()];
        args.extend_from_slice(extra);
        let log = self.spawn(ns, name, &args)?;
        let up = wait_for(Duration::from_secs(10), || {
            crate::control::query_status(&sock).ok()
        });
        if up.is_none() {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            bail!("xbond {name} did not come up:\n{text}");
        }
        Ok(sock)
    }
}
