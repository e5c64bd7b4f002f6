//! Throw-away topologies in network namespaces, for the demo and the tests:
//! namespaces and veth pairs with names unique to the run, processes started
//! inside them, and a `Drop` that stops the processes and deletes the
//! namespaces (which removes every interface in them) even when a test fails.
//! Also the pieces the labs share: a bridge as the switch, ping, and the
//! pktgen sink started and read back.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::pktgen::SinkReport;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The MAC address of the bridge [`Lab::bridge`] makes. Without a fixed one a
/// bridge takes the lowest MAC of its ports, which changes when that port
/// leaves it, and a stream sent to the old address would miss.
pub const BRIDGE_MAC: &str = "02:00:00:77:00:02";

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
        static SWEPT: std::sync::Once = std::sync::Once::new();
        SWEPT.call_once(sweep_dead_labs);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tag = format!("{prefix}{}x{n}", std::process::id() % 100_000);
        let dir = std::env::temp_dir().join(format!("xbond-lab-{tag}"));
        std::fs::create_dir_all(&dir)?;
        std::fs::write(
            dir.join("owner"),
            owner_id(std::process::id()).unwrap_or_default(),
        )?;
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
        self.veth_queues(ns_a, a, ns_b, b, 1)
    }

    /// A veth pair with `queues` RX and TX queues at each end (a multi-queue
    /// NIC's stand-in: a frame's TX queue on one end, chosen by its flow hash,
    /// is its RX queue on the other), both ends up.
    pub fn veth_queues(&self, ns_a: &str, a: &str, ns_b: &str, b: &str, queues: u32) -> Result<()> {
        let q = queues.to_string();
        cmd(&[
            "ip",
            "-n",
            ns_a,
            "link",
            "add",
            a,
            "numtxqueues",
            &q,
            "numrxqueues",
            &q,
            "type",
            "veth",
            "peer",
            "name",
            b,
            "netns",
            ns_b,
            "numtxqueues",
            &q,
            "numrxqueues",
            &q,
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

/// A live process's identity that survives pid reuse: its pid and start
/// time (`None`: gone, or a zombie).
fn owner_id(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split(' ').collect();
    if fields.first() == Some(&"Z") {
        return None;
    }
    Some(format!("{pid} {}", fields.get(19)?))
}

/// Removes what labs of processes that died without their clean-up (a
/// killed test run) left: their namespaces, with whatever runs in them, and
/// their folders. A lab is known by the owner file in its folder; one without
/// it is left alone.
fn sweep_dead_labs() {
    let Ok(names) = std::fs::read_dir("/run/netns") else {
        return;
    };
    let mut dead_dirs = std::collections::BTreeSet::new();
    for e in names.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(tag) = name
            .strip_prefix("xb-")
            .and_then(|t| t.rsplit_once('-'))
            .map(|(t, _)| t.to_string())
        else {
            continue;
        };
        let dir = std::env::temp_dir().join(format!("xbond-lab-{tag}"));
        let Ok(owner) = std::fs::read_to_string(dir.join("owner")) else {
            continue;
        };
        let alive = owner
            .split(' ')
            .next()
            .and_then(|p| p.parse::<u32>().ok())
            .and_then(owner_id)
            .is_some_and(|now| now == owner.trim());
        if alive {
            continue;
        }
        if let Ok(pids) = cmd(&["ip", "netns", "pids", &name]) {
            for pid in pids.split_whitespace() {
                let _ = Command::new("kill").args(["-KILL", pid]).status();
            }
        }
        let _ = Command::new("ip").args(["netns", "del", &name]).status();
        dead_dirs.insert(dir);
    }
    // The folders last: a lab's other namespaces need its owner file.
    for d in dead_dirs {
        let _ = std::fs::remove_dir_all(d);
    }
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

impl Lab {
    /// Bridge `br0` in `ns` over `ports`, up, with the fixed MAC
    /// [`BRIDGE_MAC`] and address `addr` (e.g. "10.77.0.2/24"): a switch
    /// without a LAG, and a neighbour behind it.
    pub fn bridge(&self, ns: &str, ports: &[&str], addr: &str) -> Result<()> {
        self.exec(ns, &["ip", "link", "add", "br0", "type", "bridge"])?;
        for p in ports {
            self.exec(ns, &["ip", "link", "set", p, "master", "br0"])?;
        }
        self.exec(ns, &["ip", "link", "set", "br0", "address", BRIDGE_MAC])?;
        self.exec(ns, &["ip", "link", "set", "br0", "up"])?;
        self.exec(ns, &["ip", "addr", "add", addr, "dev", "br0"])?;
        Ok(())
    }

    /// The MAC address of `iface` in `ns` (lower case, colons).
    pub fn mac(&self, ns: &str, iface: &str) -> Result<String> {
        let path = format!("/sys/class/net/{iface}/address");
        Ok(self.exec(ns, &["cat", &path])?.trim().to_string())
    }

    /// Pings `dst` from `ns` `count` times, 0.1 s apart, after one ping that
    /// may be spent on ARP; returns the output of the counted ones.
    pub fn ping(&self, ns: &str, dst: &str, count: u32) -> Result<String> {
        let _ = self.exec(ns, &["ping", "-c", "1", "-W", "2", dst]);
        let count = count.to_string();
        self.exec(ns, &["ping", "-c", &count, "-i", "0.1", "-W", "2", dst])
    }

    /// Starts `xbond pktgen sink` (AF_PACKET) in `ns` as process `name`,
    /// counting stream `stream` on `ifaces` with `expect` frames expected, and
    /// returns once its sockets are bound: a frame sent after that is counted
    /// (or lost on the way), never missed for want of a socket. The sink stops
    /// 0.7 s after the last frame, or after 30 s; read its report with
    /// [`Lab::sink_report`]. `exe` is the xbond binary.
    pub fn start_sink(
        &mut self,
        exe: &Path,
        ns: &str,
        name: &str,
        ifaces: &[&str],
        stream: u32,
        expect: u64,
    ) -> Result<()> {
        self.start_packet_sink(exe, ns, name, ifaces, (stream, expect), None)
    }

    /// As [`Lab::start_sink`], with `cut_file` (see `xbond pktgen sink
    /// --cut-file`): the report also says which frames came last before and
    /// first after the cut whose times the caller writes there.
    #[allow(clippy::too_many_arguments)] // start_sink's, and the cut file.
    pub fn start_sink_cut(
        &mut self,
        exe: &Path,
        ns: &str,
        name: &str,
        ifaces: &[&str],
        stream: u32,
        expect: u64,
        cut_file: &Path,
    ) -> Result<()> {
        self.start_packet_sink(exe, ns, name, ifaces, (stream, expect), Some(cut_file))
    }

    fn start_packet_sink(
        &mut self,
        exe: &Path,
        ns: &str,
        name: &str,
        ifaces: &[&str],
        (stream, expect): (u32, u64),
        cut_file: Option<&Path>,
    ) -> Result<()> {
        let exe = exe.display().to_string();
        let (stream, expect) = (stream.to_string(), expect.to_string());
        let cut = cut_file.map(|c| c.display().to_string());
        let mut args = vec![
            exe.as_str(),
            "pktgen",
            "sink",
            "--stream",
            &stream,
            "--expect",
            &expect,
            "--duration",
            "30",
            "--idle-ms",
            "700",
        ];
        if let Some(c) = &cut {
            args.extend(["--cut-file", c.as_str()]);
        }
        let pid = self.spawn_sink(ns, name, args, ifaces)?;
        self.sink_up(name, ifaces, || bound_packet_sockets(pid) >= ifaces.len())
    }

    /// Spawns sink `name` in `ns` with `args` and `--iface` for each of
    /// `ifaces`; returns its pid.
    fn spawn_sink<'a>(
        &mut self,
        ns: &str,
        name: &str,
        mut args: Vec<&'a str>,
        ifaces: &[&'a str],
    ) -> Result<u32> {
        for i in ifaces {
            args.extend(["--iface", i]);
        }
        self.spawn(ns, name, &args)?;
        self.pid(name).context("the sink just started")
    }

    /// Waits (10 s at most) until `ready` says sink `name` can count, or it
    /// exits; fails with its log if it did not come up.
    fn sink_up(&mut self, name: &str, ifaces: &[&str], ready: impl Fn() -> bool) -> Result<()> {
        let up = wait_for(Duration::from_secs(10), || {
            (ready() || !self.running(name)).then_some(())
        });
        if up.is_none() || !self.running(name) {
            let log = self.dir.join(format!("{name}.log"));
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            bail!("sink {name} did not open its sockets on {ifaces:?}:\n{text}");
        }
        Ok(())
    }

    /// Starts `xbond pktgen sink --engine af_xdp` in `ns` as process `name`
    /// on queues `0..queues` of each of `ifaces` (it attaches the XDP
    /// program to them), counting stream `stream`, and returns once it says
    /// every socket can receive (its ready file). It stops `idle_ms` after
    /// the last frame, or after 30 s; read its report with
    /// [`Lab::sink_report`].
    #[allow(clippy::too_many_arguments)]
    pub fn start_sink_xdp(
        &mut self,
        exe: &Path,
        ns: &str,
        name: &str,
        ifaces: &[&str],
        stream: u32,
        queues: u32,
        idle_ms: u64,
    ) -> Result<()> {
        let ready = self.dir.join(format!("{name}.ready"));
        let _ = std::fs::remove_file(&ready);
        let exe = exe.display().to_string();
        let (stream, queues, idle) = (stream.to_string(), queues.to_string(), idle_ms.to_string());
        let ready_arg = ready.display().to_string();
        let args = vec![
            exe.as_str(),
            "pktgen",
            "sink",
            "--engine",
            "af_xdp",
            "--stream",
            &stream,
            "--queues",
            &queues,
            "--ready-file",
            &ready_arg,
            "--duration",
            "30",
            "--idle-ms",
            &idle,
        ];
        self.spawn_sink(ns, name, args, ifaces)?;
        self.sink_up(name, ifaces, || ready.exists())
    }

    /// Waits (up to 60 s) for sink `name` to finish and returns its report.
    pub fn sink_report(&mut self, name: &str) -> Result<SinkReport> {
        let out = self.wait(name, Duration::from_secs(60))?;
        serde_json::from_str(out.trim()).with_context(|| format!("sink {name} printed: {out}"))
    }
}

/// How many AF_PACKET sockets process `pid` holds that are bound to an
/// interface: its socket descriptors matched, by inode, against the packet
/// sockets of its network namespace (`/proc/<pid>/net/packet`, whose columns
/// are sk, RefCnt, Type, Proto, Iface, R, Rmem, User, Inode).
fn bound_packet_sockets(pid: u32) -> usize {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return 0;
    };
    let inodes: HashSet<String> = fds
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            let l = l.to_str()?;
            Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
        })
        .collect();
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/packet")).unwrap_or_default();
    table
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|c| c.len() >= 9 && c[4] != "0" && inodes.contains(c[8]))
        .count()
}
