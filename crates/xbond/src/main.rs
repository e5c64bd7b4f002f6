//! `xbond`: a userspace AF_XDP bond that replaces the kernel bonding driver.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use xbond::runtime::{InjectedFault, Runtime, RuntimeOptions, ZeroCopy};
use xbond::{control, demo, failover, pktgen, upper};
use xbond_core::config::{self, BondConfig};
use xbond_core::options::MacAddr;

#[derive(Parser, Debug)]
#[command(
    name = "xbond",
    version,
    about = "A userspace AF_XDP NIC bond that replaces the kernel bonding driver"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run a bond in the foreground (as root).
    Run {
        /// The bond's TOML file.
        #[arg(long, short, required_unless_present = "bond", conflicts_with = "bond")]
        config: Option<PathBuf>,
        /// The bond's name instead of a file: its config is
        /// /etc/xbond/BOND.toml, or else /run/xbond/BOND.toml (written by the
        /// ifupdown hook from a `bond-driver xbond` stanza). The systemd unit
        /// runs this.
        #[arg(long)]
        bond: Option<String>,
        /// Bind AF_XDP sockets in copy mode without trying zero-copy.
        #[arg(long)]
        copy: bool,
        /// Benchmark baseline: forward between the upper port and the first
        /// slave with the bond logic bypassed.
        #[arg(long, hide = true)]
        raw_forwarder: bool,
        /// How long a worker keeps polling its rings after the last frame
        /// before it sleeps, in microseconds (lower: less CPU, more latency).
        #[arg(long, default_value_t = 200)]
        busy_poll_us: u64,
        /// After a pass that took few frames, wait this many microseconds
        /// (sleeping) before the next, so that a moderate stream is taken
        /// in batches: less CPU a frame, up to this much more latency. 0
        /// (the default): no wait. A saturated worker never waits, but a
        /// burst of more than a ring (2048 frames) that starts during a
        /// wait is dropped at the socket: keep N below 2048 over the peak
        /// frames a microsecond.
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=1000))]
        coalesce_us: u64,
        /// Test-only: make the worker of queue 0 panic or stall when it
        /// receives its first frame from the host.
        #[arg(long, value_enum, hide = true)]
        inject_fault: Option<FaultArg>,
    },
    /// Print a running bond's status in the /proc/net/bonding format.
    Status {
        /// Bond name (e.g. bond0).
        bond: String,
        /// Print JSON instead.
        #[arg(long)]
        json: bool,
        /// Control socket (default /run/xbond/BOND.sock).
        #[arg(long)]
        socket: Option<String>,
    },
    /// Change a running bond: `active-slave IF`, `enslave IF`, `release IF`,
    /// or `set OPTION VALUE` for
    /// the options the kernel changes at run time (miimon, updelay,
    /// downdelay, primary, primary_reselect, arp_interval, arp_ip_target
    /// [+|-]IP, arp_validate, lacp_rate, ad_actor_sys_prio, min_links,
    /// xmit_hash_policy, num_grat_arp, peer_notif_delay, ...). As root.
    Ctl {
        /// Bond name (e.g. bond0).
        bond: String,
        /// Write an option change back to the bond's config file (comments
        /// kept).
        #[arg(long)]
        save: bool,
        /// Print the daemon's JSON answer.
        #[arg(long)]
        json: bool,
        /// Control socket (default /run/xbond/BOND.sock).
        #[arg(long)]
        socket: Option<String>,
        /// What to change: `active-slave IF`, `enslave IF`, `release IF` or
        /// `set OPTION VALUE [OPTION VALUE ...]`.
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        change: Vec<String>,
    },
    /// Examine running bonds and the host: each problem with what it means
    /// and the fix. Exit status 0 healthy, 1 warnings, 2 errors.
    Doctor {
        /// Bond name (default: every bond with a control socket in
        /// /run/xbond).
        bond: Option<String>,
        /// Print JSON instead.
        #[arg(long)]
        json: bool,
        /// Control socket (default /run/xbond/BOND.sock).
        #[arg(long)]
        socket: Option<String>,
    },
    /// Remove a bond's upper port for good (as `ip link del bond0` does for a
    /// kernel bond); the daemon must be stopped first.
    Down {
        /// Bond name (e.g. bond0).
        bond: String,
        /// Only take bond0's carrier down and keep the interface (what the
        /// systemd unit runs after the daemon ends, also after a crash).
        #[arg(long)]
        carrier_only: bool,
        /// Control socket (default /run/xbond/BOND.sock), to check that no
        /// daemon runs.
        #[arg(long)]
        socket: Option<String>,
    },
    /// Install xbond for the host: the binary, the systemd unit
    /// `xbond@.service` and the ifupdown hooks.
    Install {
        /// Install under this root instead of / (packaging, tests).
        #[arg(long, default_value = "/")]
        root: PathBuf,
        /// The xbond binary that the unit and the hooks run; default: this
        /// binary copied to ROOT/usr/local/sbin/xbond.
        #[arg(long)]
        bin: Option<PathBuf>,
        /// Folder of ifupdown's hook folders and of ifupdown2's config
        /// (default ROOT/etc/network).
        #[arg(long)]
        ifupdown_dir: Option<PathBuf>,
        /// ifupdown2's addon folder (default ROOT/usr/share/ifupdown2/addons);
        /// the addon is installed only where ifupdown2 is.
        #[arg(long)]
        ifupdown2_addons: Option<PathBuf>,
    },
    /// Run by the ifupdown hooks (IFACE, PHASE and the stanza's IF_* options
    /// in the environment): starts and stops `bond-driver xbond` bonds.
    #[command(hide = true)]
    Ifupdown,
    /// Check a config file and print it with every default filled in.
    Check {
        /// The bond's TOML file.
        config: PathBuf,
    },
    /// Turn kernel bond options into an xbond TOML file.
    Import {
        /// A kernel option string: mode=active-backup,miimon=100,primary=eno1
        #[arg(long, conflicts_with = "ifupdown")]
        options: Option<String>,
        /// An ifupdown file (/etc/network/interfaces).
        #[arg(long)]
        ifupdown: Option<PathBuf>,
        /// Which iface stanza of the ifupdown file (default: the first bond).
        #[arg(long)]
        iface: Option<String>,
        /// Bond name (default: the stanza's iface, or bond0 for an option string).
        #[arg(long)]
        name: Option<String>,
        /// Slaves for an option string (comma separated).
        #[arg(long, value_delimiter = ',')]
        slaves: Vec<String>,
    },
    /// Watch a bond work and fail over on virtual links (builds and removes its own namespaces).
    Demo,
    /// Measure a failover: a stream through an active-backup bond on virtual
    /// links, the active path cut, the frames and milliseconds lost.
    FailoverTest {
        /// carrier (the far end goes down), arp (the path dies, carrier stays
        /// up; detected by the ARP monitor) or restart (no failure: the daemon
        /// is restarted under the stream).
        #[arg(long, default_value = "carrier")]
        detection: String,
        /// Offered rate, frames per second.
        #[arg(long, default_value_t = 100_000)]
        rate: u64,
        /// Seconds of traffic.
        #[arg(long, default_value_t = 3.0, value_parser = seconds)]
        seconds: f64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Test this running bond instead of the lab (the runbook's
        /// procedure: its active slave is taken down under a ping stream).
        #[arg(long, requires = "target")]
        bond: Option<String>,
        /// With --bond: the address to ping through the bond (the gateway).
        #[arg(long)]
        target: Option<String>,
        /// With --bond: go ahead and take the active slave down.
        #[arg(long)]
        yes: bool,
        /// With --bond: its control socket (default /run/xbond/BOND.sock).
        #[arg(long)]
        socket: Option<String>,
    },
    /// Traffic generator and sink for tests and measurements.
    Pktgen {
        #[command(subcommand)]
        cmd: PktgenCmd,
    },
}

/// `--inject-fault` values.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum FaultArg {
    /// The worker thread panics.
    WorkerPanic,
    /// The worker's loop stops.
    WorkerStall,
}

/// How pktgen sends and receives.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum Engine {
    /// AF_PACKET: works beside a running bond; up to about 100 kpps.
    #[value(name = "af_packet")]
    AfPacket,
    /// AF_XDP: fast; attaches XDP to the sink's interfaces.
    #[value(name = "af_xdp")]
    AfXdp,
}

#[derive(Subcommand, Debug)]
enum PktgenCmd {
    /// Send a numbered UDP stream.
    Send {
        /// Interface to send on (e.g. bond0).
        #[arg(long)]
        iface: String,
        /// Destination MAC of every frame.
        #[arg(long)]
        dst_mac: String,
        /// Source MAC (default: the interface's).
        #[arg(long)]
        src_mac: Option<String>,
        /// Source IPv4 address.
        #[arg(long, default_value = "10.0.0.1")]
        src_ip: Ipv4Addr,
        /// Destination IPv4 address.
        #[arg(long, default_value = "10.0.0.2")]
        dst_ip: Ipv4Addr,
        /// Number of destination addresses from --dst-ip on (flow f goes to
        /// dst-ip + f % dst-ips).
        #[arg(long, default_value_t = 1)]
        dst_ips: u32,
        /// Number of flows (UDP source ports), used in turn.
        #[arg(long, default_value_t = 1)]
        flows: u32,
        /// Frames to send.
        #[arg(long, default_value_t = 1000)]
        count: u64,
        /// Frames per second (0 = flat out).
        #[arg(long, default_value_t = 0)]
        rate: u64,
        /// Frame size in bytes without FCS (60-1514).
        #[arg(long, default_value_t = 64)]
        size: usize,
        /// Stream id, matched by the sink.
        #[arg(long, default_value_t = 1)]
        stream: u32,
        /// af_packet (default; works beside a running bond) or af_xdp (fast;
        /// the benchmark's generator).
        #[arg(long, value_enum, default_value_t = Engine::AfPacket)]
        engine: Engine,
        /// With af_xdp: stop after this many seconds.
        #[arg(long, default_value_t = 30.0, value_parser = seconds)]
        duration: f64,
        /// With af_xdp: send on this many TX queues (a socket each), flow f
        /// on queue f % queues.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
        queues: u32,
        /// What the flows are: udp4 (default; UDP source ports), or varied
        /// (UDP, TCP, ICMP echo over IPv4 and IPv6, every field a hash
        /// policy reads differing per flow; af_packet only).
        #[arg(long, value_enum, default_value_t = MixArg::Udp4)]
        mix: MixArg,
    },
    /// Count a stream's frames per interface; prints a JSON report (with
    /// several streams: an object of reports by stream id).
    Sink {
        /// Interface to count on (repeat for several).
        #[arg(long, required = true)]
        iface: Vec<String>,
        /// Stream id to count (repeat for several; af_packet only).
        #[arg(long, default_values_t = [1])]
        stream: Vec<u32>,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 10.0, value_parser = seconds)]
        duration: f64,
        /// Stop this long after the last frame.
        #[arg(long, default_value_t = 500)]
        idle_ms: u64,
        /// Frames expected per stream (for loss).
        #[arg(long)]
        expect: Option<u64>,
        /// Stop as soon as every stream has --expect distinct frames
        /// (af_packet only).
        #[arg(long, requires = "expect")]
        until_expected: bool,
        /// af_packet (default) or af_xdp (attaches XDP to the interfaces).
        #[arg(long, value_enum, default_value_t = Engine::AfPacket)]
        engine: Engine,
        /// With af_xdp: receive on this many RX queues of each interface.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
        queues: u32,
        /// With af_xdp: write this file once every socket can receive (a
        /// frame sent after that is counted), for a caller to wait on.
        #[arg(long)]
        ready_file: Option<std::path::PathBuf>,
        /// With af_packet: a file where a caller writes, during the run,
        /// when it cut a path (two numbers: start and end, nanoseconds since
        /// the Unix epoch); the report then gives the last frame that came
        /// before the cut and the first after it, by the kernel's arrival
        /// stamps.
        #[arg(long)]
        cut_file: Option<std::path::PathBuf>,
    },
    /// Send bad input, for the fault tests: floods of LACPDUs, malformed
    /// LACPDUs, frames with truncated headers, garbage.
    Inject {
        /// Interface to send on.
        #[arg(long)]
        iface: String,
        /// What to send.
        #[arg(long, value_enum)]
        kind: JunkArg,
        /// Destination MAC (LACPDUs go to the Slow Protocols group, garbage
        /// anywhere).
        #[arg(long, default_value = "ff:ff:ff:ff:ff:ff")]
        dst_mac: String,
        /// Frames to send.
        #[arg(long, default_value_t = 1000)]
        count: u64,
        /// Frames per second (0 = flat out).
        #[arg(long, default_value_t = 0)]
        rate: u64,
    },
}

/// `xbond pktgen send --mix`.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum MixArg {
    /// UDP over IPv4, flows by source port.
    Udp4,
    /// UDP, TCP and ICMP echo over IPv4 and IPv6, MACs, addresses and ports
    /// differing per flow.
    Varied,
}

/// `xbond pktgen inject --kind`.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum JunkArg {
    /// Well-formed LACPDUs from a system of their own.
    Lacpdu,
    /// LACPDUs that each break a rule.
    LacpduMalformed,
    /// EtherTypes that promise more than the frame holds.
    Truncated,
    /// Random bytes to random destinations.
    Garbage,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // On a terminal: colours and timestamps. Otherwise (journald, a log
    // file): one plain line per message, the kernel's way; journald stamps
    // the time itself.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let log = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        log.init();
    } else {
        log.with_ansi(false)
            .without_time()
            .with_target(false)
            .init();
    }
    match real_main(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<ConfigError>() => ExitCode::from(EX_CONFIG),
        Err(e) if e.is::<Verdict>() => {
            ExitCode::from(e.downcast_ref::<Verdict>().map_or(1, |v| v.0))
        }
        Err(e) => {
            eprintln!("xbond: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A number of seconds from the command line: finite, above 0 and at most a
/// day (`Duration::from_secs_f64` panics on NaN, negatives and overflow).
fn seconds(s: &str) -> std::result::Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if v.is_finite() && v > 0.0 && v <= 86_400.0 {
        Ok(v)
    } else {
        Err(format!("{s:?}: give seconds above 0 and at most 86400"))
    }
}

/// sysexits' EX_CONFIG: `xbond run` exits with it when its config is
/// missing or invalid (already printed).
const EX_CONFIG: u8 = 78;

#[derive(Debug)]
struct ConfigError;

/// `xbond doctor`'s verdict as the exit status (1 warnings, 2 errors); the
/// report is already printed.
#[derive(Debug)]
struct Verdict(u8);

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "doctor found problems (exit status {})", self.0)
    }
}

impl std::error::Error for Verdict {}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("bad config")
    }
}

impl std::error::Error for ConfigError {}

/// /etc/xbond/BOND.toml if it exists, else the ifupdown hook's
/// /run/xbond/BOND.toml.
fn bond_config_path(bond: &str) -> PathBuf {
    let etc = PathBuf::from(format!("/etc/xbond/{bond}.toml"));
    let run = PathBuf::from(format!("{}/{bond}.toml", xbond::ifupdown::RUN_DIR));
    if !etc.exists() && run.exists() {
        run
    } else {
        etc
    }
}

fn load(path: &PathBuf) -> Result<BondConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    BondConfig::from_toml_str(&text).with_context(|| format!("in {}", path.display()))
}

fn real_main(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Run {
            config,
            bond,
            copy,
            raw_forwarder,
            busy_poll_us,
            coalesce_us,
            inject_fault,
        } => {
            let config = match (config, &bond) {
                (Some(c), _) => c,
                (None, Some(b)) => bond_config_path(b),
                (None, None) => bail!("give --config FILE or --bond NAME"),
            };
            // A bad config is not fixed by a restart (the unit's
            // RestartPreventExitStatus names this code).
            let cfg = match load(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("xbond: {e:#}");
                    return Err(ConfigError.into());
                }
            };
            if let Some(b) = bond.filter(|b| *b != cfg.name) {
                eprintln!(
                    "xbond: in {}: key name: the bond is {:?} but --bond (the unit's instance) is {b:?}; \
                     they must be the same (the unit's clean-up acts on {b:?})",
                    config.display(),
                    cfg.name
                );
                return Err(ConfigError.into());
            }
            // A signal sets the runtime's stop flag; the self-pipe wakes its
            // control loop to see it.
            let (stop_rd, stop_wr) =
                std::os::unix::net::UnixStream::pair().context("socketpair for signals")?;
            let opts = RuntimeOptions {
                raw_forwarder,
                busy_poll: Duration::from_micros(busy_poll_us),
                coalesce: Duration::from_micros(coalesce_us),
                zero_copy: if copy { ZeroCopy::Never } else { ZeroCopy::Try },
                stop_fd: Some(std::os::fd::AsRawFd::as_raw_fd(&stop_rd)),
                config_path: Some(config.clone()),
                fault: inject_fault.map(|f| match f {
                    FaultArg::WorkerPanic => InjectedFault::Panic,
                    FaultArg::WorkerStall => InjectedFault::Stall,
                }),
                ..RuntimeOptions::default()
            };
            // Signals that arrive during set-up stop the bond as soon as it
            // runs.
            let early_stop = Arc::new(AtomicBool::new(false));
            for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
                signal_hook::flag::register(sig, early_stop.clone())
                    .context("installing signal handlers")?;
                signal_hook::low_level::pipe::register(sig, stop_wr.try_clone()?)
                    .context("installing signal handlers")?;
            }
            let rt = Runtime::start(cfg, opts)?;
            // Set up: the main thread only waits from here on; the bond's
            // own threads have dropped what they do not need.
            if let Err(e) = xbond_xdp::privilege::drop_all() {
                eprintln!("xbond: the main thread keeps its capabilities: {e}");
            }
            let stop = rt.stop_flag();
            for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
                signal_hook::flag::register(sig, stop.clone())
                    .context("installing signal handlers")?;
            }
            if early_stop.load(std::sync::atomic::Ordering::Relaxed) {
                return rt.stop();
            }
            rt.wait()
        }
        Cmd::Ctl {
            bond,
            save,
            json,
            socket,
            change,
        } => {
            let path = socket.unwrap_or_else(|| format!("/run/xbond/{bond}.sock"));
            let done = xbond::ctl::run(&path, &change, save)
                .with_context(|| format!("xbond ctl {bond} {}", change.join(" ")))?;
            if json {
                println!("{}", done.answer);
            } else if let Some(changed) = done.answer.get("changed").and_then(|c| c.as_array()) {
                if changed.is_empty() {
                    println!("{bond}: nothing changed");
                }
                for k in changed.iter().filter_map(|k| k.as_str()) {
                    let v = done.answer["toml"][k].as_str().unwrap_or_default();
                    println!("{bond}: {k} = {v}");
                }
            } else if let Some(s) = done.answer.get("slaves").and_then(|s| s.as_array()) {
                let list: Vec<&str> = s.iter().filter_map(|x| x.as_str()).collect();
                println!("{bond}: slaves {}", list.join(", "));
            } else if let Some(a) = done.answer.get("active").and_then(|a| a.as_str()) {
                println!("{bond}: active slave {a}");
            }
            if let Some(f) = done.saved {
                println!("saved to {f}");
            }
            Ok(())
        }
        Cmd::Doctor { bond, json, socket } => {
            let bonds = match (&bond, &socket) {
                (Some(b), _) => vec![b.clone()],
                (None, Some(_)) => vec![String::new()],
                (None, None) => xbond::doctor::running_bonds(),
            };
            if bonds.is_empty() {
                bail!("no running bond: /run/xbond has no control socket (give the bond's name)");
            }
            let mut worst = 0u8;
            let mut reports = Vec::new();
            for b in bonds {
                let path = socket
                    .clone()
                    .unwrap_or_else(|| format!("/run/xbond/{b}.sock"));
                match xbond::doctor::examine_bond(&path, Duration::from_secs(1)) {
                    Ok((report, now)) => {
                        worst = worst.max(report.exit_code());
                        if !json {
                            print!("{}", report.text(&now));
                        }
                        reports.push(report);
                    }
                    Err(e) => {
                        // A bond that does not answer is an error; the others
                        // are still examined.
                        let report = xbond::doctor::unreachable(&b, &path, &format!("{e:#}"));
                        worst = 2;
                        if !json {
                            print!("{}", report.text_unreachable());
                        }
                        reports.push(report);
                    }
                }
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&reports)?);
            }
            if worst > 0 {
                return Err(Verdict(worst).into());
            }
            Ok(())
        }
        Cmd::Status { bond, json, socket } => {
            let path = socket.unwrap_or_else(|| format!("/run/xbond/{bond}.sock"));
            let s = control::query_status(&path)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                print!("{}", s.proc_text());
            }
            Ok(())
        }
        Cmd::Down {
            bond,
            carrier_only,
            socket,
        } => {
            let mut nl = xbond_xdp::netlink::Netlink::open()?;
            if carrier_only {
                return upper::carrier_off(&mut nl, &bond);
            }
            let path = socket.unwrap_or_else(|| format!("/run/xbond/{bond}.sock"));
            if control::query_status(&path).is_ok() {
                bail!(
                    "an xbond daemon for {bond} is running ({path} answers); stop it first \
                     (systemctl stop xbond@{bond}, or ifdown {bond})"
                );
            }
            upper::remove(&mut nl, &bond)?;
            // The state belongs to the bond that is gone.
            let _ = std::fs::remove_file(std::path::Path::new(&path).with_extension("state"));
            Ok(())
        }
        Cmd::Install {
            root,
            bin,
            ifupdown_dir,
            ifupdown2_addons,
        } => {
            let report = xbond::install::install(&xbond::install::Install {
                root,
                bin,
                ifupdown_dir,
                ifupdown2_addons,
            })?;
            for line in report {
                println!("{line}");
            }
            Ok(())
        }
        Cmd::Ifupdown => {
            let env = xbond::ifupdown::HookEnv::from_env()?;
            let exe = std::env::current_exe().context("finding the xbond binary")?;
            xbond::ifupdown::hook(&env, &exe)
        }
        Cmd::Check { config } => {
            let cfg = load(&config)?;
            println!(
                "# {} is valid; every option with its value:",
                config.display()
            );
            println!("{}", cfg.to_toml_with_defaults());
            Ok(())
        }
        Cmd::Import {
            options,
            ifupdown,
            iface,
            name,
            slaves,
        } => {
            let mut import = match (options, ifupdown) {
                (Some(o), None) => config::import_option_string(&o)?,
                (None, Some(f)) => {
                    let text = std::fs::read_to_string(&f)
                        .with_context(|| format!("reading {}", f.display()))?;
                    config::import_ifupdown_named(&text, iface.as_deref())?
                }
                _ => bail!("give --options STRING or --ifupdown FILE"),
            };
            if import.config.slaves.is_empty() && !slaves.is_empty() {
                import.config.slaves = slaves;
                import.needs.retain(|k| k != "slaves");
            }
            if let Some(name) = name {
                import.config.set_name(&name);
            }
            if import.needs.is_empty() {
                import.config.validate()?;
            }
            for w in &import.warnings {
                eprintln!("warning: {w}");
            }
            println!("{}", import.to_toml().trim_end());
            Ok(())
        }
        Cmd::FailoverTest {
            bond: Some(bond),
            target,
            yes,
            socket,
            json,
            ..
        } => {
            let path = socket.unwrap_or_else(|| format!("/run/xbond/{bond}.sock"));
            let target = target.unwrap_or_default();
            let r = xbond::live_failover::run(&path, &target, yes)?;
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                print!("{}", r.text());
            }
            if !r.passed {
                return Err(Verdict(1).into());
            }
            Ok(())
        }
        Cmd::FailoverTest {
            detection,
            rate,
            seconds,
            json,
            ..
        } => {
            let d = match detection.as_str() {
                "carrier" => failover::Detection::Carrier,
                "arp" => failover::Detection::Arp,
                "restart" => failover::Detection::Restart,
                other => bail!("--detection {other}: valid values are carrier, arp, restart"),
            };
            let exe = std::env::current_exe().context("finding the xbond binary")?;
            let mut lab = failover::FailoverLab::new(&exe, d)?;
            let count = (rate as f64 * seconds) as u64;
            let r = lab.run(d, rate, count, Duration::from_secs_f64(seconds / 3.0))?;
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!("{}", r.summary());
            }
            // A rejected figure is no figure: say so in the exit status.
            if let Some(why) = &r.rejected {
                bail!("the failover figure is rejected: {why}");
            }
            Ok(())
        }
        Cmd::Demo => {
            let exe = std::env::current_exe().context("finding the xbond binary")?;
            demo::run(&exe)
        }
        Cmd::Pktgen { cmd } => match cmd {
            PktgenCmd::Send {
                iface,
                dst_mac,
                src_mac,
                src_ip,
                dst_ip,
                dst_ips,
                flows,
                count,
                rate,
                size,
                stream,
                engine,
                duration,
                queues,
                mix,
            } => {
                let mix = match mix {
                    MixArg::Udp4 => pktgen::Mix::Udp4,
                    MixArg::Varied => pktgen::Mix::Varied,
                };
                if mix == pktgen::Mix::Varied && matches!(engine, Engine::AfXdp) {
                    anyhow::bail!("--mix varied: only with --engine af_packet (af_xdp sends fixed-layout frames)");
                }
                if queues > 1 && matches!(engine, Engine::AfPacket) {
                    anyhow::bail!("--queues {queues}: only with --engine af_xdp (af_packet sends on the kernel's choice of queue)");
                }
                let dst_mac: MacAddr = dst_mac.parse()?;
                let src_mac: MacAddr = match src_mac {
                    Some(m) => m.parse()?,
                    None => std::fs::read_to_string(format!("/sys/class/net/{iface}/address"))
                        .with_context(|| format!("reading the MAC of {iface}"))?
                        .trim()
                        .parse()?,
                };
                let spec = pktgen::SendSpec {
                    iface,
                    dst_mac,
                    src_mac,
                    src_ip,
                    dst_ip,
                    dst_ips,
                    flows,
                    count,
                    rate,
                    size,
                    stream,
                    mix,
                };
                let r = match engine {
                    Engine::AfPacket => pktgen::send(&spec)?,
                    Engine::AfXdp => {
                        pktgen::send_xdp(&spec, Duration::from_secs_f64(duration), queues)?
                    }
                };
                println!("{}", serde_json::to_string(&r)?);
                Ok(())
            }
            PktgenCmd::Sink {
                iface,
                stream,
                duration,
                idle_ms,
                expect,
                until_expected,
                engine,
                queues,
                ready_file,
                cut_file,
            } => {
                let spec = pktgen::SinkSpec {
                    streams: stream,
                    duration: Duration::from_secs_f64(duration),
                    idle: Duration::from_millis(idle_ms),
                    expected: expect,
                    until_expected,
                    cut_file,
                };
                let text = match (engine, spec.streams.as_slice()) {
                    (Engine::AfXdp, _) if spec.cut_file.is_some() => anyhow::bail!(
                        "--cut-file: only with --engine af_packet (the kernel's arrival stamps)"
                    ),
                    (Engine::AfXdp, [s]) if !until_expected => serde_json::to_string(
                        &pktgen::sink_xdp(
                            &iface,
                            *s,
                            spec.duration,
                            spec.idle,
                            expect,
                            queues,
                            ready_file.as_deref(),
                        )?,
                    )?,
                    (Engine::AfPacket, _) if queues > 1 => anyhow::bail!(
                        "--queues {queues}: only with --engine af_xdp (af_packet receives on every queue)"
                    ),
                    (Engine::AfPacket, _) if ready_file.is_some() => anyhow::bail!(
                        "--ready-file: only with --engine af_xdp (an af_packet sink's sockets show in /proc/PID/net/packet)"
                    ),
                    (Engine::AfXdp, _) => anyhow::bail!(
                        "--engine af_xdp: one --stream and no --until-expected (af_packet takes several)"
                    ),
                    (Engine::AfPacket, _) => {
                        let mut reports = pktgen::sink(&iface, &spec)?;
                        match reports.len() {
                            1 => serde_json::to_string(&reports.pop_first().map(|(_, r)| r))?,
                            _ => serde_json::to_string(&reports)?,
                        }
                    }
                };
                println!("{text}");
                Ok(())
            }
            PktgenCmd::Inject {
                iface,
                kind,
                dst_mac,
                count,
                rate,
            } => {
                let dst: MacAddr = dst_mac
                    .parse()
                    .map_err(|e| anyhow::anyhow!("--dst-mac {dst_mac:?}: {e}"))?;
                let kind = match kind {
                    JunkArg::Lacpdu => pktgen::Junk::Lacpdu,
                    JunkArg::LacpduMalformed => pktgen::Junk::LacpduMalformed,
                    JunkArg::Truncated => pktgen::Junk::Truncated,
                    JunkArg::Garbage => pktgen::Junk::Garbage,
                };
                let r = pktgen::inject(&iface, kind, dst, count, rate)?;
                println!("{}", serde_json::to_string(&r)?);
                Ok(())
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::seconds;

    #[test]
    fn seconds_refuses_what_duration_would_panic_on() {
        assert_eq!(seconds("2.5"), Ok(2.5));
        for bad in ["nan", "NaN", "-1", "0", "inf", "-inf", "1e30", "", "three"] {
            let e = seconds(bad).unwrap_err();
            assert!(e.contains(bad), "{bad}: {e}");
        }
    }
}
