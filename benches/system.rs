//! The system benchmark: xbond forwarding on veth links in network
//! namespaces — every mode: balance-rr, active-backup, balance-xor (layer2,
//! layer3+4), broadcast, 802.3ad, balance-tlb and balance-alb — against the
//! raw AF_XDP forwarder measured in the same run.
//!
//! Run (as root): `cargo bench -p xbond --bench system` (`-- --quick` for one
//! run per point). Results go to benches/results/system.{json,md,svg}.
//! `-- --vm` runs the VM part instead: the kernel bond and xbond inside the
//! VM lab with the kernel's pktgen ([`vm_part`]), to benches/results/vm.*.
//!
//! `-- --scaling` runs only the scaling part ([`scaling`]: queues = 2
//! against queues = 1, and a cost model), which a full run ends with, to
//! benches/results/scaling.*.
//!
//! `XBOND_BENCH_BUSY_POLL_US` sets the workers' busy polling for the
//! throughput runs (200 µs, xbond's default, otherwise).
//!
//! To compare two builds, set `XBOND_BENCH_BOND_EXE` to another xbond
//! binary: the bonds (and the failover lab) run from it, while the generator
//! and the sink stay this build's, so both builds see the same traffic.
//!
//! The traffic: 64-byte UDP frames in 64 flows (UDP source ports) to 8
//! destination addresses, the same for every scenario. The addresses matter
//! for balance-tlb and balance-alb, which give each destination address a
//! slave; with one address, one slave would carry everything.
//!
//! For each scenario and direction: the AF_XDP generator sends flat out for
//! 1.5 s and the AF_XDP sink counts; frames/s is the frames of the stream the
//! sink counted, over all its interfaces, per second from its first frame to
//! its last (broadcast's two copies count twice), and the table shows how
//! they split over the sink's interfaces. The median of the runs is reported with
//! its ratio to the raw forwarder (the same worker and sockets with the bond
//! logic bypassed, one slave). Then, at a fixed offered rate below
//! saturation, the bond's own CPU time per forwarded frame (from the
//! process's schedstat, all threads), with busy polling off, and for xbond
//! once more with its workers coalescing (`--coalesce-us 100`). Finally the bond's CPU use when idle.
//! Generator, bond and sink share the machine's cores with the kernel's veth
//! work, so the frame rates are those of this machine, and the CPU time per
//! frame is the figure that compares implementations.

mod common;
mod peers;
mod scaling;
mod vm_part;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde::Serialize;
use xbond::lab::{wait_for, Lab};
use xbond::pktgen::SinkReport;

const RUN_SECS: f64 = 1.5;
const FIXED_RATE: u64 = 100_000;
/// Flows (UDP source ports) in the generator's stream.
const FLOWS: u32 = 64;
/// The first destination address; the flows go to `DST_IPS` consecutive ones.
const DST_IP: &str = "10.0.0.2";
/// Destination addresses: 10.0.0.2 to 10.0.0.9, eight distinct TLB buckets.
const DST_IPS: u32 = 8;

#[derive(Debug, Clone, Serialize)]
struct Row {
    scenario: String,
    direction: String,
    runs_fps: Vec<f64>,
    median_fps: f64,
    ratio_to_raw: f64,
    generator_fps: f64,
    generator_limited: bool,
    cpu_ns_per_frame: f64,
    /// As `cpu_ns_per_frame`, with the workers coalescing
    /// (`--coalesce-us` [`COALESCE_US`]); xbond's rows only.
    cpu_ns_per_frame_coalesced: Option<f64>,
    /// The bond's CPU time per frame over the throughput runs.
    cpu_ns_per_frame_saturated: f64,
    fixed_rate_fps: u64,
    /// Share of the sink's frames on each of its interfaces, over the
    /// throughput runs.
    sink_share: BTreeMap<String, f64>,
}

#[derive(Debug, Serialize)]
struct Results {
    machine: String,
    kernel: String,
    /// The xbond binary the bonds ran from: "this build" or a path.
    bond_exe: String,
    frame_bytes: usize,
    flows: u32,
    dst_ips: u32,
    af_xdp_mode: String,
    runs_per_point: usize,
    idle_cpu_percent: f64,
    /// Idle CPU (% of one core) of xbond's 802.3ad bond and of each peer
    /// measured, by scenario.
    idle_by_scenario: BTreeMap<String, f64>,
    /// Peers not measured in this run, and why.
    not_measured: BTreeMap<String, String>,
    rows: Vec<Row>,
    failover: Vec<xbond::failover::FailoverReport>,
}

/// One scenario's throughput runs in one direction, over the rounds.
#[derive(Default)]
struct Saturation {
    fps: Vec<f64>,
    generator_fps: Vec<f64>,
    per_iface: BTreeMap<String, u64>,
    /// The bond's CPU time over the runs, and the frames the sink counted.
    cpu_ns: u64,
    frames: u64,
}

struct Scenario {
    name: &'static str,
    config: &'static str,
    two_slaves: bool,
    raw: bool,
    partner: bool,
    /// Not xbond: a peer in its place (with `config` the far partner's).
    peer: Option<peers::Peer>,
}

/// xbond's 802.3ad scenario, the one the bonding peers compare with.
const LACP_SCENARIO: &str = "802.3ad layer3+4 (via a partner bond)";
/// The bond compared with DPDK's plain forwarder: two slaves straight to
/// the switch.
const XOR_SCENARIO: &str = "balance-xor layer3+4";
const LACP_CONFIG: &str =
    "mode = \"802.3ad\"\nlacp_rate = \"fast\"\nxmit_hash_policy = \"layer3+4\"";

fn scenarios() -> Vec<Scenario> {
    let s = |name, config, two_slaves, raw, partner| Scenario {
        name,
        config,
        two_slaves,
        raw,
        partner,
        peer: None,
    };
    let peer = |name, two_slaves, p| Scenario {
        name,
        config: match p {
            peers::Peer::DpdkIo => "mode = \"balance-rr\"",
            // See peers::Peer::start for why the slow rate.
            peers::Peer::DpdkBond => {
                "mode = \"802.3ad\"\nlacp_rate = \"slow\"\nxmit_hash_policy = \"layer3+4\""
            }
            peers::Peer::OvsBalanceTcp => LACP_CONFIG,
        },
        two_slaves,
        raw: false,
        partner: two_slaves,
        peer: Some(p),
    };
    vec![
        s(
            "raw AF_XDP forwarder (1 slave)",
            "mode = \"balance-rr\"",
            false,
            true,
            false,
        ),
        s("balance-rr", "mode = \"balance-rr\"", true, false, false),
        s(
            "active-backup",
            "mode = \"active-backup\"",
            true,
            false,
            false,
        ),
        s(
            "balance-xor layer2",
            "mode = \"balance-xor\"\nxmit_hash_policy = \"layer2\"",
            true,
            false,
            false,
        ),
        s(
            XOR_SCENARIO,
            "mode = \"balance-xor\"\nxmit_hash_policy = \"layer3+4\"",
            true,
            false,
            false,
        ),
        s("broadcast", "mode = \"broadcast\"", true, false, false),
        s(LACP_SCENARIO, LACP_CONFIG, true, false, true),
        s("balance-tlb", "mode = \"balance-tlb\"", true, false, false),
        s("balance-alb", "mode = \"balance-alb\"", true, false, false),
        peer(
            "peer: DPDK testpmd io forward, af_xdp (1 slave, no bond)",
            false,
            peers::Peer::DpdkIo,
        ),
        peer(
            "peer: DPDK bonding PMD mode 4 l34, af_xdp (via a partner bond)",
            true,
            peers::Peer::DpdkBond,
        ),
        peer(
            "peer: OVS 3.1 balance-tcp LACP, afxdp (via a partner bond)",
            true,
            peers::Peer::OvsBalanceTcp,
        ),
    ]
}

/// This build's xbond: the generator and the sink.
fn exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_xbond"))
}

/// The xbond the bonds run from: `XBOND_BENCH_BOND_EXE`, or this build's.
fn bond_exe() -> &'static Path {
    static EXE: OnceLock<PathBuf> = OnceLock::new();
    EXE.get_or_init(|| {
        std::env::var_os("XBOND_BENCH_BOND_EXE").map_or_else(|| exe().to_path_buf(), PathBuf::from)
    })
}

struct Bench {
    lab: Lab,
    host: String,
    tx_sink: Vec<String>,
    tx_sink_ns: String,
    rx_gen: (String, String),
    bond_pid: u32,
    /// Queues the generator and the sink use on each interface (the bond's
    /// `queues`).
    queues: u32,
}

fn setup(sc: &Scenario, busy_poll_us: u64, coalesce_us: u64) -> anyhow::Result<Bench> {
    let mut lab = Lab::new("bn")?;
    let host = lab.netns("host")?;
    let far = lab.netns("far")?;
    lab.veth(&host, "a0", &far, "b0")?;
    let mut slaves = vec!["a0"];
    if sc.two_slaves {
        lab.veth(&host, "a1", &far, "b1")?;
        slaves.push("a1");
    }
    let list = slaves
        .iter()
        .map(|s| format!("\"{s}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let cfg = format!(
        "name = \"bond0\"\nslaves = [{list}]\nmiimon = 100\n{}\n",
        sc.config
    );
    let far_cfg = cfg.replace("\"a0\"", "\"b0\"").replace("\"a1\"", "\"b1\"");
    let (sock, bond_pid) = if let Some(peer) = sc.peer {
        // The partner first: the peer's bond waits for its LACP.
        let far_sock = if sc.partner {
            Some(lab.start_xbond(bond_exe(), &far, "partner", &far_cfg)?)
        } else {
            None
        };
        let up = || {
            far_sock
                .as_deref()
                .is_some_and(|s| xbond::control::query_status(s).is_ok_and(|st| st.mii_status))
        };
        (None, peer.start(&mut lab, exe(), &host, &slaves, up)?)
    } else {
        let (bp, co) = (busy_poll_us.to_string(), coalesce_us.to_string());
        let mut extra = vec!["--busy-poll-us", bp.as_str(), "--coalesce-us", co.as_str()];
        if sc.raw {
            extra.push("--raw-forwarder");
        }
        let sock = lab.start_xbond_with(bond_exe(), &host, "bond", &cfg, &extra)?;
        if sc.partner {
            let far_sock = lab.start_xbond(bond_exe(), &far, "partner", &far_cfg)?;
            anyhow::ensure!(carrier(&far_sock).is_some(), "LACP did not come up");
        }
        let pid = lab
            .pid("bond")
            .ok_or_else(|| anyhow::anyhow!("no bond pid"))?;
        (Some(sock), pid)
    };
    let (tx_sink, tx_sink_ns, rx_gen) = if sc.partner {
        (
            vec!["bond0".to_string()],
            far.clone(),
            (far.clone(), "bond0".to_string()),
        )
    } else {
        let sinks = if sc.two_slaves {
            vec!["b0".into(), "b1".into()]
        } else {
            vec!["b0".into()]
        };
        // Frames towards the host enter on the active slave's link where
        // the mode has one (active-backup and balance-tlb take in nothing
        // elsewhere), else on a0's.
        let active = match &sock {
            Some(sock) => {
                carrier(sock)
                    .ok_or_else(|| {
                        anyhow::anyhow!("{}: the bond's carrier did not come up", sc.name)
                    })?
                    .active
            }
            None => None,
        };
        let rx_link = if active.as_deref() == Some("a1") {
            "b1"
        } else {
            "b0"
        };
        (sinks, far.clone(), (far.clone(), rx_link.to_string()))
    };
    Ok(Bench {
        lab,
        host,
        tx_sink,
        tx_sink_ns,
        rx_gen,
        bond_pid,
        queues: 1,
    })
}

/// The bond's status once its carrier is up (10 s at most).
fn carrier(sock: &str) -> Option<xbond_core::status::Status> {
    wait_for(Duration::from_secs(10), || {
        xbond::control::query_status(sock)
            .ok()
            .filter(|s| s.mii_status)
    })
}

/// One measurement: returns (frames received per second, generator frames per
/// second, the sink's report).
fn measure(
    b: &mut Bench,
    dir: &str,
    rate: u64,
    secs: f64,
) -> anyhow::Result<(f64, f64, SinkReport)> {
    let exe = exe().display().to_string();
    let (sink_ns, sink_ifaces, gen_ns, gen_iface) = if dir == "host->slaves" {
        (
            b.tx_sink_ns.clone(),
            b.tx_sink.clone(),
            b.host.clone(),
            "bond0".to_string(),
        )
    } else {
        (
            b.host.clone(),
            vec!["bond0".to_string()],
            b.rx_gen.0.clone(),
            b.rx_gen.1.clone(),
        )
    };
    let ifaces: Vec<&str> = sink_ifaces.iter().map(String::as_str).collect();
    b.lab
        .start_sink_xdp(Path::new(&exe), &sink_ns, "sink", &ifaces, 1, b.queues, 400)?;
    let queues = b.queues.to_string();
    let (r, d) = (rate.to_string(), secs.to_string());
    let (flows, dst_ips) = (FLOWS.to_string(), DST_IPS.to_string());
    let mut gen_args = vec![
        exe.as_str(),
        "pktgen",
        "send",
        "--engine",
        "af_xdp",
        "--iface",
        &gen_iface,
        "--dst-mac",
        "02:00:00:00:00:99",
        "--dst-ip",
        DST_IP,
        "--dst-ips",
        &dst_ips,
        "--flows",
        &flows,
        "--count",
        "0",
        "--rate",
        &r,
        "--duration",
        &d,
    ];
    if b.queues > 1 {
        gen_args.extend(["--queues", queues.as_str()]);
    }
    let out = b.lab.exec(&gen_ns, &gen_args)?;
    let sent: serde_json::Value = serde_json::from_str(out.trim())?;
    let gen_fps =
        sent["sent"].as_f64().unwrap_or(0.0) / sent["seconds"].as_f64().unwrap_or(1.0).max(1e-9);
    let text = b.lab.wait("sink", Duration::from_secs(20))?;
    let rep: SinkReport = serde_json::from_str(text.trim())?;
    let fps = if rep.seconds > 0.0 {
        rep.received as f64 / rep.seconds
    } else {
        0.0
    };
    Ok((fps, gen_fps, rep))
}

/// The workers' coalescing wait for the second fixed-rate figure.
const COALESCE_US: u64 = 100;

/// The bond's CPU time per frame the sink received, at [`FIXED_RATE`]
/// offered for 2 s in direction `dir`.
fn fixed_rate_cpu(b: &mut Bench, dir: &str) -> anyhow::Result<f64> {
    let c0 = common::cpu_ns(b.bond_pid);
    let (_, _, rep) = measure(b, dir, FIXED_RATE, 2.0)?;
    let c1 = common::cpu_ns(b.bond_pid);
    Ok(if rep.received > 0 {
        c1.saturating_sub(c0) as f64 / rep.received as f64
    } else {
        0.0
    })
}

/// The workers' busy polling for the throughput runs, in microseconds:
/// xbond's default (200), or `XBOND_BENCH_BUSY_POLL_US`, to see what the
/// polling buys at saturation.
fn busy_poll_us() -> u64 {
    std::env::var("XBOND_BENCH_BUSY_POLL_US")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

/// The bond's CPU use with no traffic, in % of one core, over 5 s.
fn idle_percent(b: &Bench) -> f64 {
    std::thread::sleep(Duration::from_secs(1));
    let t0 = Instant::now();
    let c0 = common::cpu_ns(b.bond_pid);
    std::thread::sleep(Duration::from_secs(5));
    let c1 = common::cpu_ns(b.bond_pid);
    c1.saturating_sub(c0) as f64 / t0.elapsed().as_nanos() as f64 * 100.0
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        0.0
    } else {
        v[v.len() / 2]
    }
}

fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(());
    }
    let quick = std::env::args().any(|a| a == "--quick");
    let runs = if quick { 1 } else { 5 };
    let machine = common::machine();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    if std::env::args().any(|a| a == "--vm") {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        return vm_part::run(&repo, &format!("{machine}, Linux {kernel}"));
    }
    if std::env::args().any(|a| a == "--scaling") {
        return scaling::run(&machine, &kernel, runs);
    }
    let mut rows: Vec<Row> = Vec::new();
    let mut raw = [0.0f64; 2];
    let mut idle_by_scenario = BTreeMap::new();
    let mut not_measured = BTreeMap::new();
    // `--only TEXT[,TEXT...]`: the scenarios whose name contains one of
    // the TEXTs, and nothing else (no idle or failover part; the results
    // files are not written).
    let args: Vec<String> = std::env::args().collect();
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1));
    let mut selected = Vec::new();
    for sc in scenarios() {
        if only.is_some_and(|o| !o.split(',').any(|t| !t.is_empty() && sc.name.contains(t))) {
            continue;
        }
        if let Some(why) = sc.peer.and_then(peers::Peer::missing) {
            eprintln!("{}: not measured ({why})", sc.name);
            not_measured.insert(sc.name.to_string(), why);
            continue;
        }
        selected.push(sc);
    }
    // Throughput with the default busy polling; CPU per frame with a bond
    // that sleeps as soon as its rings are empty, so that the figure is
    // work per frame and not spinning between frames.
    const DIRS: [&str; 2] = ["host->slaves", "slaves->host"];
    // The throughput runs are interleaved: each round sets every scenario
    // up in turn and measures it once in each direction, so that a drift
    // of the machine over the benchmark (on these shared machines, up to
    // twice as slow within an hour) falls on every scenario and peer alike
    // and the ratios between them survive it.
    let mut saturation: Vec<[Saturation; 2]> =
        selected.iter().map(|_| Default::default()).collect();
    for round in 0..runs {
        for (sc, acc) in selected.iter().zip(&mut saturation) {
            let mut b = setup(sc, busy_poll_us(), 0)?;
            for (dir, a) in DIRS.iter().zip(acc.iter_mut()) {
                let c0 = common::cpu_ns(b.bond_pid);
                let (f, g, rep) = measure(&mut b, dir, 0, RUN_SECS)?;
                a.cpu_ns += common::cpu_ns(b.bond_pid).saturating_sub(c0);
                a.frames += rep.received;
                a.fps.push(f);
                a.generator_fps.push(g);
                for (i, n) in rep.per_iface {
                    *a.per_iface.entry(i).or_default() += n;
                }
            }
            eprintln!(
                "round {}/{runs}: {}: {:.0} / {:.0} fps",
                round + 1,
                sc.name,
                acc[0].fps.last().unwrap_or(&0.0),
                acc[1].fps.last().unwrap_or(&0.0)
            );
            let idle_wanted =
                sc.peer.is_some() || sc.name == LACP_SCENARIO || sc.name == XOR_SCENARIO;
            if round == 0 && idle_wanted {
                let idle = idle_percent(&b);
                eprintln!("{}: idle {idle:.3}% of a core", sc.name);
                idle_by_scenario.insert(sc.name.to_string(), idle);
            }
        }
    }
    for (sc, acc) in selected.iter().zip(saturation) {
        let through = acc.map(|a| {
            let total = a.per_iface.values().sum::<u64>().max(1) as f64;
            let share: BTreeMap<String, f64> = a
                .per_iface
                .into_iter()
                .map(|(i, n)| (i, n as f64 / total))
                .collect();
            let saturated = a.cpu_ns as f64 / a.frames.max(1) as f64;
            let mut gens = a.generator_fps;
            (a.fps, median(&mut gens), share, saturated)
        });
        // The fixed rate with xbond's workers coalescing (not the peers,
        // which have no such setting).
        let coalesced: Vec<Option<f64>> = if sc.peer.is_none() {
            let mut b = setup(sc, 0, COALESCE_US)?;
            let mut v = Vec::new();
            for dir in DIRS {
                v.push(Some(fixed_rate_cpu(&mut b, dir)?));
            }
            v
        } else {
            vec![None; DIRS.len()]
        };
        let mut b = setup(sc, 0, 0)?;
        for (di, (dir, (fps, gen_med, share, saturated))) in DIRS.iter().zip(through).enumerate() {
            let ns_per_frame = fixed_rate_cpu(&mut b, dir)?;
            let med = median(&mut fps.clone());
            if sc.raw {
                raw[di] = med;
            }
            let row = Row {
                scenario: sc.name.to_string(),
                direction: dir.to_string(),
                runs_fps: fps,
                median_fps: med,
                ratio_to_raw: if raw[di] > 0.0 { med / raw[di] } else { 0.0 },
                generator_fps: gen_med,
                generator_limited: med >= 0.95 * gen_med,
                cpu_ns_per_frame: ns_per_frame,
                cpu_ns_per_frame_coalesced: coalesced[di],
                cpu_ns_per_frame_saturated: saturated,
                fixed_rate_fps: FIXED_RATE,
                sink_share: share,
            };
            eprintln!(
                "{:<40} {:<13} {:>10.0} fps  x{:.2}  gen {:>10.0}  {:>7.0} ns/frame ({:.0} saturated, {} coalescing)  {}",
                row.scenario,
                row.direction,
                row.median_fps,
                row.ratio_to_raw,
                row.generator_fps,
                row.cpu_ns_per_frame,
                row.cpu_ns_per_frame_saturated,
                row.cpu_ns_per_frame_coalesced
                    .map_or("-".to_string(), |c| format!("{c:.0}")),
                split(&row.sink_share)
            );
            rows.push(row);
        }
        drop(b);
    }
    if only.is_some() {
        eprintln!("--only: no idle or failover part, no results written");
        return Ok(());
    }
    // Idle: an active-backup bond with no traffic.
    let idle = {
        let ab = scenarios()
            .into_iter()
            .find(|s| s.name == "active-backup")
            .ok_or_else(|| anyhow::anyhow!("no active-backup scenario"))?;
        idle_percent(&setup(&ab, 200, 0)?)
    };
    eprintln!("idle: {idle:.3}% of a core");
    // Failover: carrier loss, a dead path found by the ARP monitor, and a
    // daemon restart (no failover), at 100 kpps offered, and carrier loss at
    // 500 kpps (rejected by the tool where the lab cannot carry it
    // cleanly); the median run by frames lost.
    let mut failover = Vec::new();
    for (d, rate) in [
        (xbond::failover::Detection::Carrier, 100_000),
        (xbond::failover::Detection::Carrier, 500_000),
        (xbond::failover::Detection::Arp, 100_000),
        (xbond::failover::Detection::Restart, 100_000),
    ] {
        let mut runs_f = Vec::new();
        for _ in 0..runs.min(3) {
            let mut fl = xbond::failover::FailoverLab::new(bond_exe(), d)?;
            runs_f.push(fl.run(d, rate, 3 * rate, Duration::from_secs(1))?);
        }
        runs_f.sort_by_key(|r| r.failover_lost);
        let m = runs_f.swap_remove(runs_f.len() / 2);
        eprintln!("{}", m.summary());
        failover.push(m);
    }
    let res = Results {
        machine,
        kernel,
        bond_exe: if std::env::var_os("XBOND_BENCH_BOND_EXE").is_some() {
            bond_exe().display().to_string()
        } else {
            "this build".into()
        },
        frame_bytes: 64,
        flows: FLOWS,
        dst_ips: DST_IPS,
        af_xdp_mode: "copy (veth)".into(),
        runs_per_point: runs,
        idle_cpu_percent: idle,
        idle_by_scenario,
        not_measured,
        rows,
        failover,
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../benches/results");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("system.json"), serde_json::to_string_pretty(&res)?)?;
    std::fs::write(dir.join("system.md"), markdown(&res))?;
    std::fs::write(dir.join("system.svg"), svg(&res))?;
    eprintln!("wrote {}", dir.display());
    scaling::run(&res.machine, &res.kernel, runs)
}

/// The sink's split over its interfaces, e.g. "b0 50%, b1 50%"; empty for
/// one interface.
fn split(share: &BTreeMap<String, f64>) -> String {
    if share.len() < 2 {
        return String::new();
    }
    share
        .iter()
        .map(|(i, s)| format!("{i} {:.0}%", s * 100.0))
        .collect::<Vec<_>>()
        .join(", ")
}

fn markdown(r: &Results) -> String {
    let mut o = format!(
        "# xbond system benchmark\n\nMachine: {}; kernel {}; {}-byte frames; AF_XDP {}; median of {} run(s) of {RUN_SECS} s, interleaved (each round sets up every scenario in turn, so that a drift of the machine falls on all alike); \
         {} flows to {} destination addresses. Bond binary: {}.\n\
         Frames/s is what the sink counted, over all its interfaces (broadcast's two copies count twice). \
         Generator, bond and sink share the cores with the kernel's veth work: frame rates are this machine's; \
         CPU time per frame is the bond process's own (all threads), measured at {} frames/s offered, \
         with busy polling off; for xbond also with its workers coalescing (`--coalesce-us {COALESCE_US}`: \
         a pass that took few frames is followed by a {COALESCE_US} us sleep, so up to that much latency).\n\n\
         | scenario | direction | frames/s (median) | ratio to raw | generator frames/s | generator the limit? | bond CPU ns/frame | coalescing | sink's split |\n|---|---|---:|---:|---:|---|---:|---:|---|\n",
        r.machine,
        r.kernel,
        r.frame_bytes,
        r.af_xdp_mode,
        r.runs_per_point,
        r.flows,
        r.dst_ips,
        r.bond_exe,
        FIXED_RATE
    );
    for row in &r.rows {
        o.push_str(&format!(
            "| {} | {} | {:.0} | {:.2} | {:.0} | {} | {:.0} | {} | {} |\n",
            row.scenario,
            row.direction,
            row.median_fps,
            row.ratio_to_raw,
            row.generator_fps,
            if row.generator_limited { "yes" } else { "no" },
            row.cpu_ns_per_frame,
            row.cpu_ns_per_frame_coalesced
                .map_or("-".to_string(), |c| format!("{c:.0}")),
            split(&row.sink_share)
        ));
    }
    o.push_str(&format!(
        "\nIdle bond (active-backup, 2 slaves, no traffic): {:.3}% of one core.\n",
        r.idle_cpu_percent
    ));
    o.push_str(&peer_table(r));
    o.push_str(
        "\nFailover: the median of the runs by frames lost. The bond's reaction is its control loop's, \
         from reading the failure (the carrier event or a failed transmission; the ARP monitor's verdict) \
         to handing the new plan to the workers. What the window loses on top is bounded by the kernel: \
         its delivery of the carrier event (immediate for a veth, whose linkwatch event is urgent; a \
         NIC's driver may take longer) and the frames already in the dead slave's rings (at most its \
         TX ring, 2048 frames; at 100 kfps a few batches). A run that lost frames outside the window \
         is rejected: the lab, not the bond, limits it.\n\n\
         | failover (active-backup) | offered frames/s | frames lost in the window | ms of traffic lost | bond's reaction (us) | lost outside the window | figure |\n|---|---:|---:|---:|---:|---:|---|\n",
    );
    for f in &r.failover {
        let what = match f.detection {
            xbond::failover::Detection::Carrier => "carrier loss (netlink event, TX hint)",
            xbond::failover::Detection::Arp => "dead path, carrier up (ARP monitor 100 ms x 2)",
            xbond::failover::Detection::Restart => {
                "daemon restart (SIGTERM, start adopts bond0; no failover)"
            }
        };
        o.push_str(&format!(
            "| {what} | {} | {} | {:.2} | {} | {} | {} |\n",
            f.rate,
            f.failover_lost,
            f.lost_ms,
            f.reaction_us.map_or("-".to_string(), |us| us.to_string()),
            f.lost_outside(),
            if f.rejected.is_some() {
                "rejected: the lab lost frames outside the window"
            } else {
                "clean"
            }
        ));
    }
    o.push_str(
        "\nCarrier loss, timed from the cut (the netlink request that takes the switch port down; the \
         carrier goes within it, and the figures count from its start). Arrivals are the switch-side \
         sink's kernel stamps; a frame's sending time is the generator's schedule, corrected by the \
         rounds it wrote late. The reaction, to the first frame that arrived after the cut (so through \
         the new slave), is bounded by the kernel's delivery of the carrier event, the bond's own \
         reaction above, a worker's next batch and the new slave's delivery; on this 2-core machine \
         also by the generator's silence around the cut (its late rounds), since the cut's own kernel \
         work takes its CPU: where the first frame after the cut was sent after it, that much of \
         the reaction was the generator's silence. The lost frames sent before the cut were in the bond's rings (bond0's \
         queue, a worker's batch, the dead slave's TX ring): bounded by the offered rate times the \
         bond's forwarding latency, plus what the dead slave's ring held (one TX batch, 64 frames, \
         when the cut came as a batch was sent). Those sent after it are bounded by the rate times \
         the time until the bond switched. The dead slave's share is what the bond handed eth0 \
         and never arrived (capped at the window: its count includes a few frames not of the \
         stream).\n\n\
         | offered frames/s | cut request (us) | first frame after the cut (us) | it was sent at (us) | last before it (us) | lost, sent before the cut | lost, sent after it | of them handed to the dead slave | generator late near the cut (us) |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let us = |v: Option<f64>| v.map_or("-".to_string(), |u| format!("{u:.0}"));
    for f in &r.failover {
        if let Some(x) = &f.split {
            o.push_str(&format!(
                "| {} | {:.0} | {} | {} | {} | {} | {} | {} | {:.0} |\n",
                f.rate,
                x.cut_us,
                us(x.first_frame_us),
                us(x.first_frame_sent_us),
                us(x.last_frame_us),
                x.shown(x.in_flight_at_cut),
                x.shown(x.sent_after_cut),
                x.to_dead_slave,
                x.schedule_late_us
            ));
        }
    }
    o
}

/// xbond against each peer measured in the run: xbond's 802.3ad bond
/// against the bonding peers and DPDK's plain forwarder, and xbond's
/// balance-xor bond and raw forwarder against DPDK's plain forwarder;
/// ratios are xbond / peer (frames/s: above 1 is xbond faster; CPU: below 1
/// is xbond cheaper), the fixed-rate CPU also with xbond coalescing.
fn peer_table(r: &Results) -> String {
    let row = |name: &str, dir: &str| {
        r.rows
            .iter()
            .find(|x| x.scenario == name && x.direction == dir)
    };
    let mut o = String::from(
        "\n| xbond | peer | direction | frames/s: xbond / peer | CPU ns/frame saturated: xbond / peer | CPU ns/frame at the fixed rate: xbond / peer | the same, xbond coalescing | idle CPU %: xbond / peer |\n|---|---|---|---|---|---|---|---|\n",
    );
    let raw = "raw AF_XDP forwarder (1 slave)";
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    for p in scenarios().iter().filter(|s| s.peer.is_some()) {
        pairs.push((LACP_SCENARIO, p.name));
        if p.peer == Some(peers::Peer::DpdkIo) {
            // A bond with no partner in the way, like the plain forwarder:
            // the bond's forwarding against the best raw path.
            pairs.push((XOR_SCENARIO, p.name));
            pairs.push((raw, p.name));
        }
    }
    let idle = |name: &str| {
        r.idle_by_scenario
            .get(name)
            .map_or("-".to_string(), |v| format!("{v:.3}"))
    };
    for (x, p) in pairs {
        for dir in ["host->slaves", "slaves->host"] {
            let (Some(a), Some(b)) = (row(x, dir), row(p, dir)) else {
                continue;
            };
            let ratio = |u: f64, v: f64| if v > 0.0 { u / v } else { 0.0 };
            o.push_str(&format!(
                "| {x} | {p} | {dir} | {:.0} / {:.0} = {:.2} | {:.0} / {:.0} = {:.2} | {:.0} / {:.0} = {:.2} | {} | {} / {} |\n",
                a.median_fps,
                b.median_fps,
                ratio(a.median_fps, b.median_fps),
                a.cpu_ns_per_frame_saturated,
                b.cpu_ns_per_frame_saturated,
                ratio(a.cpu_ns_per_frame_saturated, b.cpu_ns_per_frame_saturated),
                a.cpu_ns_per_frame,
                b.cpu_ns_per_frame,
                ratio(a.cpu_ns_per_frame, b.cpu_ns_per_frame),
                a.cpu_ns_per_frame_coalesced.map_or("-".to_string(), |c| format!(
                    "{c:.0} / {:.0} = {:.2}",
                    b.cpu_ns_per_frame,
                    ratio(c, b.cpu_ns_per_frame)
                )),
                idle(x),
                idle(p),
            ));
        }
    }
    for (name, why) in &r.not_measured {
        o.push_str(&format!("\nNot measured: {name}: {why}.\n"));
    }
    o
}

fn svg(r: &Results) -> String {
    let max = r.rows.iter().map(|x| x.median_fps).fold(1.0, f64::max);
    let bar_h = 16.0;
    let label_w = 330.0;
    let plot_w = 420.0;
    let h = 40.0 + r.rows.len() as f64 * (bar_h + 6.0) + 30.0;
    let mut o = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"11\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"10\" y=\"20\" font-size=\"13\">xbond forwarding, frames/s (median), {m}</text>\n",
        w = label_w + plot_w + 120.0,
        m = r.machine
    );
    for (i, row) in r.rows.iter().enumerate() {
        let y = 40.0 + i as f64 * (bar_h + 6.0);
        let w = row.median_fps / max * plot_w;
        let color = if row.direction == "host->slaves" {
            "#4a7ebb"
        } else {
            "#e0913c"
        };
        o.push_str(&format!(
            "<text x=\"10\" y=\"{ty}\">{} ({})</text><rect x=\"{label_w}\" y=\"{y}\" width=\"{w:.1}\" height=\"{bar_h}\" fill=\"{color}\"/>\
             <text x=\"{tx:.1}\" y=\"{ty}\">{:.0} (x{:.2})</text>\n",
            row.scenario,
            row.direction,
            row.median_fps,
            row.ratio_to_raw,
            ty = y + 12.0,
            tx = label_w + w + 5.0,
        ));
    }
    o.push_str(&format!(
        "<text x=\"10\" y=\"{}\">blue: host->slaves, orange: slaves->host; ratio to the raw AF_XDP forwarder in the same run</text>\n</svg>\n",
        h - 10.0
    ));
    o
}
