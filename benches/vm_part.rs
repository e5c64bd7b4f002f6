//! The system benchmark's VM part (`-- --vm`): the kernel bond and xbond on
//! the same veths inside the VM lab's guest, with the kernel's pktgen as the
//! generator (benches/vm/kernel-vs-xbond.sh), and the ratios xbond / kernel.
//! Results go to benches/results/vm.{json,md}.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize)]
struct Guest {
    throughput: Vec<Throughput>,
    failover: Vec<Failover>,
    guest_kernel: String,
    guest_cpus: u32,
    run_seconds: f64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
struct Throughput {
    mode: String,
    bond: String,
    frames: u64,
    seconds: f64,
    busy_cs: u64,
    sent: u64,
    fixed_rate: u64,
    fixed_frames: u64,
    fixed_seconds: f64,
    fixed_busy_cs: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
struct Failover {
    bond: String,
    monitor: String,
    rate: u64,
    lost_cut: u64,
    lost_return: u64,
    lost_elsewhere: i64,
    active_after_cut: String,
    active_after_return: String,
    /// pktgen stopped before the end (bond0 lost its carrier): what
    /// followed was not measured.
    #[serde(default)]
    generator_stopped: bool,
}

#[derive(Debug, Serialize)]
struct Row {
    mode: String,
    kernel_fps: f64,
    xbond_fps: f64,
    fps_ratio: f64,
    kernel_cpu_ns: f64,
    xbond_cpu_ns: f64,
    cpu_ratio: f64,
    fixed_rate: u64,
    kernel_cpu_ns_fixed: f64,
    xbond_cpu_ns_fixed: f64,
    cpu_ratio_fixed: f64,
}

#[derive(Debug, Serialize)]
struct Results {
    host: String,
    guest_kernel: String,
    guest_cpus: u32,
    accelerator: String,
    frame_bytes: u32,
    flows: u32,
    run_seconds: f64,
    rows: Vec<Row>,
    throughput: Vec<Throughput>,
    failover: Vec<Failover>,
}

/// The guest's busy time (centiseconds over all its CPUs) per frame, in ns.
fn ns_per_frame(busy_cs: u64, frames: u64) -> f64 {
    if frames == 0 {
        return f64::NAN;
    }
    busy_cs as f64 * 1e7 / frames as f64
}

/// Runs the VM part; `host` names the machine.
pub fn run(repo: &Path, host: &str) -> Result<()> {
    let out = repo.join("target/vmlab/bench-out");
    let _ = std::fs::remove_dir_all(&out);
    let status = Command::new(repo.join("scripts/vmlab.sh"))
        .args(["run", "--timeout", "1200", "--out"])
        .arg(&out)
        .arg(repo.join("benches/vm/kernel-vs-xbond.sh"))
        .status()
        .context("running scripts/vmlab.sh")?;
    match status.code() {
        Some(0) => {}
        Some(77) => bail!("the VM lab cannot run here (scripts/vmlab.sh exit 77): nothing measured"),
        c => bail!("the VM benchmark failed (scripts/vmlab.sh exit {c:?}); its run directory is kept under target/vmlab/runs"),
    }
    let text = std::fs::read_to_string(out.join("vm-bench.json"))
        .context("the VM benchmark wrote no results")?;
    let g: Guest = serde_json::from_str(&text).context("reading the VM benchmark's results")?;
    let accelerator = std::fs::read_dir(repo.join("target/vmlab"))
        .ok()
        .into_iter()
        .flatten()
        .flatten()
        .find_map(|e| std::fs::read_to_string(e.path().join("accel")).ok())
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "tcg".to_string());
    let mut rows = Vec::new();
    let modes: Vec<String> = g.throughput.iter().fold(Vec::new(), |mut v, t| {
        if !v.contains(&t.mode) {
            v.push(t.mode.clone());
        }
        v
    });
    for m in modes {
        let get = |b: &str| g.throughput.iter().find(|t| t.mode == m && t.bond == b);
        let (Some(k), Some(x)) = (get("kernel"), get("xbond")) else {
            continue;
        };
        let fps = |t: &Throughput| t.frames as f64 / t.seconds;
        let (kc, xc) = (
            ns_per_frame(k.busy_cs, k.frames),
            ns_per_frame(x.busy_cs, x.frames),
        );
        let (kf, xf) = (
            ns_per_frame(k.fixed_busy_cs, k.fixed_frames),
            ns_per_frame(x.fixed_busy_cs, x.fixed_frames),
        );
        rows.push(Row {
            mode: m.clone(),
            kernel_fps: fps(k),
            xbond_fps: fps(x),
            fps_ratio: fps(x) / fps(k),
            kernel_cpu_ns: kc,
            xbond_cpu_ns: xc,
            cpu_ratio: xc / kc,
            fixed_rate: k.fixed_rate,
            kernel_cpu_ns_fixed: kf,
            xbond_cpu_ns_fixed: xf,
            cpu_ratio_fixed: xf / kf,
        });
    }
    let r = Results {
        host: host.to_string(),
        guest_kernel: g.guest_kernel,
        guest_cpus: g.guest_cpus,
        accelerator,
        frame_bytes: 64,
        flows: 64,
        run_seconds: g.run_seconds,
        rows,
        throughput: g.throughput,
        failover: g.failover,
    };
    let dir = repo.join("benches/results");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        dir.join("vm.json"),
        serde_json::to_string_pretty(&r)? + "\n",
    )?;
    let md = render(&r);
    std::fs::write(dir.join("vm.md"), &md)?;
    print!("{md}");
    Ok(())
}

fn render(r: &Results) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let _ = writeln!(o, "# xbond against the kernel bond, in the VM lab\n");
    let _ = writeln!(
        o,
        "Host: {}. Guest: Linux {}, {} vCPUs, qemu {} (absolute figures are the emulator's; the ratios are the result). \
         {}-byte frames (60 + FCS) from the kernel's pktgen on bond0, {} UDP flows; the slaves are veths, AF_XDP copy mode for xbond. \
         Both bonds in the same run, on the same veths. Frames/s is what the slaves' far ends received, over {} s windows; \
         CPU is the guest's busy time on all its CPUs per frame received (generator included, the same for both).\n",
        r.host, r.guest_kernel, r.guest_cpus, r.accelerator, r.frame_bytes, r.flows, r.run_seconds
    );
    let _ = writeln!(
        o,
        "| mode | kernel frames/s | xbond frames/s | xbond / kernel | kernel CPU ns/frame | xbond CPU ns/frame | xbond / kernel | at frames/s | kernel CPU ns/frame | xbond CPU ns/frame | xbond / kernel |"
    );
    let _ = writeln!(o, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for x in &r.rows {
        let _ = writeln!(
            o,
            "| {} | {:.0} | {:.0} | {:.2} | {:.0} | {:.0} | {:.2} | {} | {:.0} | {:.0} | {:.2} |",
            x.mode,
            x.kernel_fps,
            x.xbond_fps,
            x.fps_ratio,
            x.kernel_cpu_ns,
            x.xbond_cpu_ns,
            x.cpu_ratio,
            x.fixed_rate,
            x.kernel_cpu_ns_fixed,
            x.xbond_cpu_ns_fixed,
            x.cpu_ratio_fixed
        );
    }
    let _ = writeln!(
        o,
        "\nFailover, active-backup with primary v0, a steady pktgen stream to a host behind a bridge: the active link's far end \
         down (carrier, miimon 100), or out of the bridge with carrier up (ARP monitor, arp_interval 100, arp_missed_max 2), then back. \
         Frames lost: the longest gap in pktgen's sequence numbers after the cut and after the return; elsewhere: any other gap \
         (loss the failover did not cause; it makes the run's figures suspect). pktgen stops for good when bond0 loses its \
         carrier (no usable slave for a moment); such a row says so, and nothing after that moment was measured.\n"
    );
    let _ = writeln!(
        o,
        "| bond | monitor | frames/s | lost at the cut | ms | lost at the return | lost elsewhere | active after the cut | after the return | pktgen stopped |"
    );
    let _ = writeln!(o, "|---|---|---:|---:|---:|---:|---:|---|---|---|");
    for f in &r.failover {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {:.1} | {} | {} | {} | {} | {} |",
            f.bond,
            f.monitor,
            f.rate,
            f.lost_cut,
            f.lost_cut as f64 * 1000.0 / f.rate.max(1) as f64,
            f.lost_return,
            f.lost_elsewhere,
            f.active_after_cut,
            f.active_after_return,
            if f.generator_stopped { "yes" } else { "no" }
        );
    }
    o
}
