//! The soak: xbond under mixed traffic for a long while, with a failover
//! every 10 s and an LACP renegotiation every minute, to see that nothing
//! grows or slows with time.
//!
//! Run (as root): `cargo bench -p xbond --bench soak` (`-- --minutes N`,
//! default 10). Results go to benches/results/soak.{json,md}.
//!
//! Two xbond 802.3ad bonds (fast rate, layer3+4) joined by two veth links.
//! Each 10 s cycle sends two streams from the host's bond0 to the far
//! bond0 over AF_PACKET: 64-byte frames in 64 flows at 10 000 frames/s and
//! 1400-byte frames in 16 flows at 1 000 frames/s, counted by a sink on the
//! far bond0. Halfway through a cycle one link is cut (its far end set down;
//! the links take turns) and it comes back at the start of the next cycle.
//! Every sixth cycle, instead, the far bond is restarted: a new LACP
//! partner, a renegotiation on both links. The first cycle has no fault, to
//! show what the lab loses without one.
//!
//! Reported for the host's bond at the start (the first minute) and at the
//! end (the last minute): resident memory, CPU (all threads, from
//! schedstat, as a share of one core) and the frames lost per failover.

#[allow(dead_code)] // machine() is the benchmarks'
mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;
use xbond::lab::{wait_for, Lab};

const CYCLE: Duration = Duration::from_secs(10);
/// (stream id, frame size, flows, frames per second).
const STREAMS: [(u32, usize, u32, u64); 2] = [(1, 64, 64, 10_000), (2, 1400, 16, 1_000)];

fn exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_xbond"))
}

fn cfg(a: &str, b: &str) -> String {
    format!(
        "name = \"bond0\"\nslaves = [\"{a}\", \"{b}\"]\nmode = \"802.3ad\"\nmiimon = 100\nlacp_rate = \"fast\"\nxmit_hash_policy = \"layer3+4\"\n"
    )
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

#[derive(Debug, Clone, Serialize)]
struct Cycle {
    n: usize,
    /// "none", "cut b0", "cut b1" or "partner restart".
    fault: String,
    sent: u64,
    lost: u64,
    /// Host bond's CPU over the cycle, % of one core.
    cpu_pct: f64,
    rss_kib: u64,
}

#[derive(Debug, Serialize)]
struct Summary {
    /// First minute and last minute: RSS (KiB), CPU (% of a core), frames
    /// lost per link cut (median of the cuts in that minute).
    start: (u64, f64, f64),
    end: (u64, f64, f64),
    minutes: u64,
    cycles: Vec<Cycle>,
    machine: String,
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn window(cycles: &[Cycle]) -> (u64, f64, f64) {
    let rss = cycles.last().map_or(0, |c| c.rss_kib);
    let cpu = median(cycles.iter().map(|c| c.cpu_pct).collect());
    let cut = median(
        cycles
            .iter()
            .filter(|c| c.fault.starts_with("cut"))
            .map(|c| c.lost as f64)
            .collect(),
    );
    (rss, cpu, cut)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return Ok(());
    }
    let minutes: u64 = args
        .iter()
        .position(|a| a == "--minutes")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(10);
    let exe_s = exe().display().to_string();
    let mut lab = Lab::new("sk")?;
    let host = lab.netns("host")?;
    let far = lab.netns("far")?;
    lab.veth(&host, "a0", &far, "b0")?;
    lab.veth(&host, "a1", &far, "b1")?;
    let sock = lab.start_xbond(exe(), &host, "bond", &cfg("a0", "a1"))?;
    lab.start_xbond(exe(), &far, "partner", &cfg("b0", "b1"))?;
    let pid = lab.pid("bond").ok_or_else(|| anyhow::anyhow!("no pid"))?;
    let aggregated = |sock: &str| {
        wait_for(Duration::from_secs(20), || {
            let s = xbond::control::query_status(sock).ok()?;
            let both = s.slaves.iter().all(|p| {
                p.lacp
                    .as_ref()
                    .is_some_and(|l| l.mux == xbond_core::lacp::MuxState::CollectingDistributing)
            });
            (both && s.mii_status).then_some(())
        })
    };
    anyhow::ensure!(aggregated(&sock).is_some(), "LACP did not aggregate");
    let far_mac = lab.mac(&far, "bond0")?;
    let cycles_n = (minutes * 60 / CYCLE.as_secs()) as usize;
    let mut cycles: Vec<Cycle> = Vec::new();
    let mut down: Option<&str> = None;
    for n in 0..cycles_n {
        // The link cut in the last cycle comes back; the bonds aggregate
        // it again before the cycle starts.
        if let Some(p) = down.take() {
            lab.exec(&far, &["ip", "link", "set", p, "up"])?;
        }
        aggregated(&sock);
        let fault = match n {
            0 => "none".to_string(),
            n if n % 6 == 0 => "partner restart".to_string(),
            n => format!("cut b{}", n % 2),
        };
        for (id, _, _, rate) in STREAMS {
            let expect = rate * CYCLE.as_secs();
            lab.start_sink(exe(), &far, &format!("sink{id}"), &["bond0"], id, expect)?;
        }
        let cpu0 = common::cpu_ns(pid);
        let t0 = Instant::now();
        for (id, size, flows, rate) in STREAMS {
            let count = (rate * CYCLE.as_secs()).to_string();
            let (id_s, size_s, flows_s, rate_s) = (
                id.to_string(),
                size.to_string(),
                flows.to_string(),
                rate.to_string(),
            );
            lab.spawn(
                &host,
                &format!("send{id}"),
                &[
                    &exe_s,
                    "pktgen",
                    "send",
                    "--iface",
                    "bond0",
                    "--dst-mac",
                    &far_mac,
                    "--dst-ip",
                    "10.0.0.2",
                    "--dst-ips",
                    "8",
                    "--flows",
                    &flows_s,
                    "--count",
                    &count,
                    "--rate",
                    &rate_s,
                    "--size",
                    &size_s,
                    "--stream",
                    &id_s,
                ],
            )?;
        }
        std::thread::sleep(CYCLE / 2);
        match fault.as_str() {
            "none" => {}
            "partner restart" => {
                lab.stop("partner")?;
                lab.start_xbond(exe(), &far, "partner", &cfg("b0", "b1"))?;
            }
            cut => {
                let p = if cut.ends_with('0') { "b0" } else { "b1" };
                lab.exec(&far, &["ip", "link", "set", p, "down"])?;
                down = Some(p);
            }
        }
        for (id, ..) in STREAMS {
            lab.wait(&format!("send{id}"), CYCLE * 3)?;
        }
        let cpu_pct = (common::cpu_ns(pid) - cpu0) as f64 / t0.elapsed().as_nanos() as f64 * 100.0;
        let (mut sent, mut lost) = (0, 0);
        for (id, ..) in STREAMS {
            let r = lab.sink_report(&format!("sink{id}"))?;
            sent += r.expected;
            lost += r.lost;
        }
        let c = Cycle {
            n,
            fault,
            sent,
            lost,
            cpu_pct,
            rss_kib: rss_kib(pid),
        };
        println!(
            "cycle {:3} {:16} sent {:6} lost {:5} cpu {:5.1} % rss {} KiB",
            c.n, c.fault, c.sent, c.lost, c.cpu_pct, c.rss_kib
        );
        cycles.push(c);
    }
    let per_min = (60 / CYCLE.as_secs()) as usize;
    let first = &cycles[..per_min.min(cycles.len())];
    let last = &cycles[cycles.len().saturating_sub(per_min)..];
    let summary = Summary {
        start: window(first),
        end: window(last),
        minutes,
        machine: format!(
            "{} CPUs, Linux {}, veth (AF_XDP copy mode), AF_PACKET generator and sink",
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            xbond_xdp::sys::kernel_release()
        ),
        cycles,
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../benches/results");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        dir.join("soak.json"),
        serde_json::to_string_pretty(&summary)?,
    )?;
    let mut md = format!(
        "# Soak: {} minutes, 802.3ad, a link cut every 10 s, a partner restart every minute\n\n\
         Machine: {}. Traffic per cycle: 64-byte frames at 10 000/s and 1400-byte frames at \
         1 000/s from the host's bond0 (AF_PACKET), counted on the far bond0.\n\n\
         | | RSS (KiB) | CPU (% of a core) | frames lost per link cut (median) |\n|---|---:|---:|---:|\n",
        summary.minutes, summary.machine
    );
    for (name, (rss, cpu, cut)) in [
        ("first minute", summary.start),
        ("last minute", summary.end),
    ] {
        md.push_str(&format!("| {name} | {rss} | {cpu:.1} | {cut:.0} |\n"));
    }
    md.push_str(
        "\n| cycle | fault | sent | lost | CPU % | RSS (KiB) |\n|---:|---|---:|---:|---:|---:|\n",
    );
    for c in &summary.cycles {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {:.1} | {} |\n",
            c.n, c.fault, c.sent, c.lost, c.cpu_pct, c.rss_kib
        ));
    }
    std::fs::write(dir.join("soak.md"), md)?;
    println!(
        "start: RSS {} KiB, CPU {:.1} %, lost per cut {:.0}; end: RSS {} KiB, CPU {:.1} %, lost per cut {:.0}",
        summary.start.0, summary.start.1, summary.start.2, summary.end.0, summary.end.1, summary.end.2
    );
    Ok(())
}
