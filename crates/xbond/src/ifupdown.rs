//! Debian ifupdown integration: the hooks `xbond install` puts in
//! `/etc/network/if-pre-up.d/` and `if-post-down.d/` run `xbond ifupdown`
//! for every interface; it acts only on stanzas with `bond-driver xbond`,
//! so that a kernel bond stanza becomes an xbond one with that one line:
//!
//! ```text
//! auto bond0
//! iface bond0 inet manual
//!     bond-slaves eno1 eno2
//!     bond-miimon 100
//!     bond-mode 802.3ad
//!     bond-xmit-hash-policy layer3+4
//!     bond-driver xbond
//! ```
//!
//! pre-up turns the stanza's `bond-*` options (ifupdown passes them as
//! `IF_BOND_*`) into `<run dir>/<iface>.toml` with the importer that
//! `xbond import --ifupdown` uses, and starts the daemon: under systemd as
//! `xbond@<iface>.service`, otherwise directly (a detached `xbond run`, whose
//! readiness comes back over the sd_notify protocol on a socket of ours). It
//! returns once bond0 forwards, so that ifupdown configures it next; when the
//! daemon cannot start, ifup fails with xbond's error and nothing is left.
//! post-down stops the daemon and removes bond0, as ifdown does a kernel bond.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use xbond_core::config;
use xbond_xdp::netlink::Netlink;

use crate::upper;

/// The default folder of generated configs, sockets, pid files and logs.
pub const RUN_DIR: &str = "/run/xbond";

/// How long pre-up waits for the daemon to forward.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How the daemon is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Manager {
    /// `systemctl start xbond@<iface>`.
    Systemd,
    /// A detached `xbond run` (no systemd, or `xbond-manager direct`).
    Direct,
}

/// What a hook call is about, from ifupdown's environment.
#[derive(Debug, Clone)]
pub struct HookEnv {
    /// `IFACE`.
    pub iface: String,
    /// `PHASE`: pre-up, post-down, ...
    pub phase: String,
    /// Every `IF_*` variable: the stanza's options.
    pub options: BTreeMap<String, String>,
    /// Where configs, sockets and pid files go (`xbond-run-dir`, default
    /// [`RUN_DIR`]).
    pub run_dir: PathBuf,
    /// How the daemon is run.
    pub manager: Manager,
}

impl HookEnv {
    /// Reads the hook's environment.
    pub fn from_env() -> Result<HookEnv> {
        // ifupdown gives hooks a fresh environment: xbond's own settings come
        // as stanza options too (`xbond-run-dir`, `xbond-manager`, or
        // `ifup -o xbond-run-dir=DIR`), as IF_XBOND_*.
        let get = |k: &str| {
            std::env::var(k)
                .ok()
                .or_else(|| std::env::var(format!("IF_{k}")).ok())
                .filter(|v| !v.is_empty())
        };
        let iface = get("IFACE")
            .context("IFACE is not set: `xbond ifupdown` is run by ifupdown's hooks")?;
        let phase = get("PHASE")
            .context("PHASE is not set: `xbond ifupdown` is run by ifupdown's hooks")?;
        let options = std::env::vars()
            .filter_map(|(k, v)| k.strip_prefix("IF_").map(|o| (o.to_string(), v)))
            .collect();
        let systemd = Path::new("/run/systemd/system").is_dir();
        let manager = match get("XBOND_MANAGER").as_deref() {
            Some("direct") => Manager::Direct,
            Some("systemd") => Manager::Systemd,
            Some(other) => {
                bail!("xbond-manager {other}: valid values are systemd, direct")
            }
            None if systemd => Manager::Systemd,
            None => Manager::Direct,
        };
        Ok(HookEnv {
            iface,
            phase,
            options,
            run_dir: get("XBOND_RUN_DIR").map_or_else(|| PathBuf::from(RUN_DIR), PathBuf::from),
            manager,
        })
    }

    /// Whether the stanza is xbond's (`bond-driver xbond`).
    pub fn is_xbond(&self) -> bool {
        self.options.get("BOND_DRIVER").map(String::as_str) == Some("xbond")
    }

    fn path(&self, ext: &str) -> PathBuf {
        self.run_dir.join(format!("{}.{ext}", self.iface))
    }

    /// The stanza again, as ifupdown text: `IF_BOND_XMIT_HASH_POLICY=layer3+4`
    /// becomes `bond-xmit-hash-policy layer3+4`.
    pub fn stanza(&self) -> String {
        let mut s = format!("iface {} inet manual\n", self.iface);
        for (k, v) in &self.options {
            if let Some(opt) = k.strip_prefix("BOND_") {
                let word = format!("bond-{}", opt.to_ascii_lowercase().replace('_', "-"));
                s.push_str(&format!("    {word} {v}\n"));
            }
        }
        s
    }

    /// The bond's config from the stanza, with its control socket in the run
    /// folder.
    pub fn config_toml(&self) -> Result<String> {
        let import = config::import_ifupdown_named(&self.stanza(), Some(&self.iface))
            .with_context(|| format!("{}: the stanza's bond-* options", self.iface))?;
        if !import.needs.is_empty() {
            bail!(
                "{}: the stanza lacks {} (e.g. `bond-slaves eno1 eno2`)",
                self.iface,
                import.needs.join(", ")
            );
        }
        let mut cfg = import.config;
        if self.run_dir != Path::new(RUN_DIR) {
            cfg.control_socket = Some(self.path("sock").display().to_string());
        }
        cfg.validate()
            .with_context(|| format!("{}: the stanza's bond-* options", self.iface))?;
        Ok(cfg.to_toml())
    }
}

/// Runs one hook call: pre-up starts the bond, post-down stops and removes
/// it; anything else, or a stanza without `bond-driver xbond`, is left alone.
pub fn hook(env: &HookEnv, exe: &Path) -> Result<()> {
    if !env.is_xbond() {
        return Ok(());
    }
    match env.phase.as_str() {
        "pre-up" => up(env, exe),
        "post-down" => down(env),
        _ => Ok(()),
    }
}

fn up(env: &HookEnv, exe: &Path) -> Result<()> {
    let etc = PathBuf::from(format!("/etc/xbond/{}.toml", env.iface));
    if env.manager == Manager::Systemd {
        // The unit reads /etc/xbond/<bond>.toml, else /run/xbond/<bond>.toml.
        if env.run_dir != Path::new(RUN_DIR) {
            bail!(
                "{}: xbond-run-dir {} works with xbond-manager direct only; under systemd \
                 the unit reads {RUN_DIR}",
                env.iface,
                env.run_dir.display()
            );
        }
        if etc.exists() {
            bail!(
                "{}: both the stanza (bond-driver xbond) and {} configure this bond; \
                 remove one of them",
                env.iface,
                etc.display()
            );
        }
    }
    std::fs::create_dir_all(&env.run_dir)
        .with_context(|| format!("creating {}", env.run_dir.display()))?;
    let cfg_path = env.path("toml");
    std::fs::write(&cfg_path, env.config_toml()?)
        .with_context(|| format!("writing {}", cfg_path.display()))?;
    let result = match env.manager {
        Manager::Systemd => start_systemd(env),
        Manager::Direct => start_direct(env, exe, &cfg_path),
    };
    if result.is_err() {
        let _ = std::fs::remove_file(&cfg_path);
    }
    result
}

fn start_systemd(env: &HookEnv) -> Result<()> {
    let unit = format!("xbond@{}.service", env.iface);
    let out = Command::new("systemctl")
        .args(["start", &unit])
        .output()
        .context("running systemctl")?;
    if !out.status.success() {
        // Not left to restart behind ifup's back.
        let _ = Command::new("systemctl").args(["stop", &unit]).status();
        let _ = Command::new("systemctl")
            .args(["reset-failed", &unit])
            .status();
        let journal = Command::new("journalctl")
            .args(["-u", &unit, "-n", "5", "--no-pager", "-o", "cat"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        bail!(
            "{}: systemctl start {unit} failed: {}\n{}",
            env.iface,
            String::from_utf8_lossy(&out.stderr).trim(),
            journal.trim()
        );
    }
    Ok(())
}

fn start_direct(env: &HookEnv, exe: &Path, cfg_path: &Path) -> Result<()> {
    let notify_path = env.path("notify");
    let _ = std::fs::remove_file(&notify_path);
    let notify = UnixDatagram::bind(&notify_path)
        .with_context(|| format!("binding {}", notify_path.display()))?;
    notify.set_read_timeout(Some(Duration::from_millis(200)))?;
    let log_path = env.path("log");
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    // setsid: the daemon outlives ifup and its session.
    let mut child = Command::new("setsid")
        .arg(exe)
        .args(["run", "--config"])
        .arg(cfg_path)
        .env("NOTIFY_SOCKET", &notify_path)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .spawn()
        .context("starting xbond run")?;
    let deadline = Instant::now() + START_TIMEOUT;
    let mut buf = [0u8; 4096];
    let outcome = loop {
        if let Ok(n) = notify.recv(&mut buf) {
            if String::from_utf8_lossy(&buf[..n])
                .lines()
                .any(|l| l == "READY=1")
            {
                break Ok(());
            }
        }
        if let Some(status) = child.try_wait()? {
            break Err(anyhow::anyhow!("xbond run exited ({status})"));
        }
        if Instant::now() >= deadline {
            // SIGTERM first, so that the daemon undoes what it made.
            let pid = child.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
            let gone = Instant::now() + Duration::from_secs(10);
            while child.try_wait()?.is_none() && Instant::now() < gone {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
            if let Ok(mut nl) = Netlink::open() {
                let _ = upper::remove(&mut nl, &env.iface);
            }
            break Err(anyhow::anyhow!(
                "xbond run was not ready within {} s",
                START_TIMEOUT.as_secs()
            ));
        }
    };
    let _ = std::fs::remove_file(&notify_path);
    match outcome {
        Ok(()) => {
            std::fs::write(env.path("pid"), format!("{}\n", child.id()))?;
            Ok(())
        }
        Err(e) => {
            let mut text = String::new();
            let _ = std::fs::File::open(&log_path).and_then(|mut f| f.read_to_string(&mut text));
            let last: Vec<&str> = text.lines().rev().take(5).collect();
            let last: Vec<&str> = last.into_iter().rev().collect();
            bail!("{}: {e}: {}", env.iface, last.join("\n"));
        }
    }
}

fn down(env: &HookEnv) -> Result<()> {
    match env.manager {
        Manager::Systemd => {
            let unit = format!("xbond@{}.service", env.iface);
            // --no-block: at shutdown, networking.service's `ifdown -a` runs
            // this while the unit's own stop job waits for networking to
            // stop (the unit is ordered before it); a blocking stop would
            // wait for itself.
            let st = Command::new("systemctl")
                .args(["stop", "--no-block", &unit])
                .status()
                .context("running systemctl")?;
            if !st.success() {
                bail!("{}: systemctl stop {unit} failed ({st})", env.iface);
            }
            let stopping = Command::new("systemctl")
                .arg("is-system-running")
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "stopping");
            let deadline = Instant::now() + Duration::from_secs(15);
            let active = || {
                Command::new("systemctl")
                    .args(["is-active", "--quiet", &unit])
                    .status()
                    .is_ok_and(|s| s.success())
            };
            while !stopping && active() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            if active() {
                // The unit stops later and takes bond0's carrier down then;
                // bond0 is not pulled from under a running daemon.
                return Ok(());
            }
        }
        Manager::Direct => stop_direct(env)?,
    }
    let mut nl = Netlink::open()?;
    if nl.exists(&env.iface)? {
        upper::remove(&mut nl, &env.iface)?;
    }
    for ext in ["toml", "pid", "state", "log"] {
        let _ = std::fs::remove_file(env.path(ext));
    }
    Ok(())
}

/// Sends SIGTERM to the daemon of the pid file and waits until it is gone.
fn stop_direct(env: &HookEnv) -> Result<()> {
    let pid_path = env.path("pid");
    let Ok(text) = std::fs::read_to_string(&pid_path) else {
        return Ok(());
    };
    let pid = text.trim();
    pid.parse::<u32>()
        .with_context(|| format!("{}: bad pid {pid:?}", pid_path.display()))?;
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    // Only a process that is an xbond of this bond's config.
    let cmdline = std::fs::read(proc_dir.join("cmdline")).unwrap_or_default();
    let cfg = env.path("toml").display().to_string();
    if !String::from_utf8_lossy(&cmdline).contains(&cfg) {
        return Ok(());
    }
    let _ = Command::new("kill").args(["-TERM", pid]).status();
    let deadline = Instant::now() + Duration::from_secs(15);
    while proc_dir.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if proc_dir.exists() {
        let _ = Command::new("kill").args(["-KILL", pid]).status();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(opts: &[(&str, &str)]) -> HookEnv {
        HookEnv {
            iface: "bond0".into(),
            phase: "pre-up".into(),
            options: opts
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            run_dir: PathBuf::from("/tmp/xbond-ifupdown-test"),
            manager: Manager::Direct,
        }
    }

    #[test]
    fn the_seed_stanza_becomes_a_config() {
        let e = env(&[
            ("BOND_SLAVES", "eno1 eno2"),
            ("BOND_MIIMON", "100"),
            ("BOND_MODE", "802.3ad"),
            ("BOND_XMIT_HASH_POLICY", "layer3+4"),
            ("BOND_DRIVER", "xbond"),
            ("BRIDGE_PORTS", "ignored"),
        ]);
        assert!(e.is_xbond());
        let toml = e.config_toml().unwrap();
        let cfg = xbond_core::config::BondConfig::from_toml_str(&toml).unwrap();
        assert_eq!(cfg.slaves, ["eno1", "eno2"]);
        assert_eq!(cfg.miimon, 100);
        assert_eq!(cfg.mode, xbond_core::options::Mode::Ieee8023ad);
        assert_eq!(
            cfg.control_socket.as_deref(),
            Some("/tmp/xbond-ifupdown-test/bond0.sock")
        );
    }

    #[test]
    fn a_stanza_without_the_driver_line_is_not_xbonds() {
        assert!(!env(&[("BOND_SLAVES", "eno1")]).is_xbond());
        assert!(!env(&[("BOND_DRIVER", "bonding")]).is_xbond());
    }

    #[test]
    fn a_bad_option_names_the_stanza_line() {
        let e = env(&[
            ("BOND_SLAVES", "eno1"),
            ("BOND_MODE", "802.3az"),
            ("BOND_DRIVER", "xbond"),
        ]);
        let err = format!("{:#}", e.config_toml().unwrap_err());
        assert!(
            err.contains("bond-mode") && err.contains("802.3az"),
            "{err}"
        );
        let e = env(&[("BOND_MIIMON", "100"), ("BOND_DRIVER", "xbond")]);
        let err = format!("{:#}", e.config_toml().unwrap_err());
        assert!(err.contains("slaves"), "{err}");
    }
}
