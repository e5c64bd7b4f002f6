//! The system benchmark's scaling part (`-- --scaling`, and at the end of a
//! full run): a balance-xor layer3+4 bond over two slaves of `queues` queues
//! each, served by as many workers (one a queue), with the generator and the
//! sink on as many queues (flow f on queue f % queues), against the same with
//! one queue. Each worker's CPU comes from its thread's schedstat and
//! stat (user and system time); the workers' own counters (busy passes, TX
//! system calls, sleeps) come from the status. So the figure that compares
//! is frames per second per worker-core: on a 2-core machine the generator
//! and the sink take the cores the workers would scale onto, and frames/s
//! alone cannot show scaling.
//!
//! Then a cost model from runs at fixed rates (one queue, no busy polling,
//! so that CPU time is work, not spinning): a least-squares fit of the
//! workers' CPU time to frames, TX system calls and wake-ups, and what it
//! predicts for a 2 x 25 GbE NIC with 16 queues. Results go to
//! benches/results/scaling.{json,md}.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;
use xbond::lab::Lab;

use super::{bond_exe, carrier, common, measure, median, Bench, FLOWS};

/// The model's offered rates (0: flat out), each run up to 3 times (every
/// run a point of the fit).
const MODEL_RATES: [u64; 5] = [10_000, 30_000, 100_000, 300_000, 0];
const MODEL_SECS: f64 = 2.0;
const RUN_SECS: f64 = 1.5;
const DIRS: [&str; 2] = ["host->slaves", "slaves->host"];

/// One queue count and direction at saturation.
#[derive(Debug, Clone, Serialize)]
pub struct ScaleRow {
    queues: u32,
    /// The workers' busy polling before they sleep.
    busy_poll_us: u64,
    direction: String,
    runs_fps: Vec<f64>,
    median_fps: f64,
    /// What the generator sent, frames/s (median).
    generator_fps: f64,
    /// Frames the bond dropped (its own counters: no slave, a full TX
    /// ring, ...) over the runs.
    bond_dropped: u64,
    /// Frames the kernel dropped at the bond's AF_XDP sockets (RX ring
    /// full, other drops; XDP_STATISTICS) over the runs.
    socket_dropped: u64,
    /// The workers' CPU over the runs, in cores (CPU seconds a second).
    worker_cores: f64,
    /// Frames forwarded per CPU second of the workers.
    fps_per_worker_core: f64,
    /// The workers' CPU per frame, user (xbond's own code) and system (the
    /// kernel's: copy-mode TX, poll).
    user_ns_per_frame: f64,
    system_ns_per_frame: f64,
    frames_per_busy_pass: f64,
    frames_per_kick: f64,
    frames_per_sleep: f64,
    /// Each queue's share of the frames.
    queue_share: Vec<f64>,
}

/// One fixed-rate run of the model: the workers' totals.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CostPoint {
    offered_fps: u64,
    frames: u64,
    cpu_ns: u64,
    /// User time (xbond's own code) within `cpu_ns`, from clock ticks.
    user_ns: u64,
    busy_passes: u64,
    kicks: u64,
    sleeps: u64,
}

/// The fit: the workers' CPU = per_frame x frames + per_kick x kicks +
/// per_wakeup x sleeps.
#[derive(Debug, Clone, Serialize)]
pub struct Model {
    per_frame_ns: f64,
    per_kick_ns: f64,
    per_wakeup_ns: f64,
    /// Root-mean-square error of the fit over the points, relative to their
    /// mean CPU time.
    relative_rms_error: f64,
    points: Vec<CostPoint>,
}

#[derive(Debug, Serialize)]
struct Results {
    machine: String,
    kernel: String,
    frame_bytes: usize,
    flows: u32,
    af_xdp_mode: String,
    runs_per_point: usize,
    rows: Vec<ScaleRow>,
    model: Option<Model>,
}

/// The workers' CPU and counters at one moment.
#[derive(Debug, Clone, Copy, Default)]
struct Snapshot {
    sched_ns: u64,
    user_ns: u64,
    system_ns: u64,
    frames: u64,
    busy_passes: u64,
    kicks: u64,
    sleeps: u64,
    dropped: u64,
    socket_dropped: u64,
}

impl Snapshot {
    fn take(pid: u32, sock: &str, tick_ns: u64) -> anyhow::Result<(Snapshot, Vec<u64>)> {
        let (sched_ns, user, system) = common::threads_cpu(pid, "xbond-w");
        let s = xbond::control::query_status(sock)?;
        let q = &s.runtime.queues;
        let per_queue = q.iter().map(|q| q.from_host + q.to_host).collect();
        Ok((
            Snapshot {
                sched_ns,
                user_ns: user * tick_ns,
                system_ns: system * tick_ns,
                frames: q.iter().map(|q| q.from_host + q.to_host).sum(),
                busy_passes: q.iter().map(|q| q.busy_passes).sum(),
                kicks: q.iter().map(|q| q.kicks).sum(),
                sleeps: q.iter().map(|q| q.sleeps).sum(),
                dropped: q.iter().map(|q| q.dropped).sum(),
                socket_dropped: q
                    .iter()
                    .flat_map(|q| &q.sockets)
                    .map(|k| k.rx_dropped + k.rx_ring_full)
                    .sum(),
            },
            per_queue,
        ))
    }

    fn since(&self, before: &Snapshot) -> Snapshot {
        Snapshot {
            sched_ns: self.sched_ns.saturating_sub(before.sched_ns),
            user_ns: self.user_ns.saturating_sub(before.user_ns),
            system_ns: self.system_ns.saturating_sub(before.system_ns),
            frames: self.frames.saturating_sub(before.frames),
            busy_passes: self.busy_passes.saturating_sub(before.busy_passes),
            kicks: self.kicks.saturating_sub(before.kicks),
            sleeps: self.sleeps.saturating_sub(before.sleeps),
            dropped: self.dropped.saturating_sub(before.dropped),
            socket_dropped: self.socket_dropped.saturating_sub(before.socket_dropped),
        }
    }
}

/// The bond on two slaves of `queues` queues each.
fn setup(queues: u32, busy_poll_us: u64) -> anyhow::Result<(Bench, String)> {
    let mut lab = Lab::new("sq")?;
    let host = lab.netns("host")?;
    let far = lab.netns("far")?;
    lab.veth_queues(&host, "a0", &far, "b0", queues)?;
    lab.veth_queues(&host, "a1", &far, "b1", queues)?;
    let cfg = format!(
        "name = \"bond0\"\nslaves = [\"a0\", \"a1\"]\nmiimon = 100\nmode = \"balance-xor\"\n\
         xmit_hash_policy = \"layer3+4\"\nqueues = {queues}\n"
    );
    let bp = busy_poll_us.to_string();
    let sock = lab.start_xbond_with(bond_exe(), &host, "bond", &cfg, &["--busy-poll-us", &bp])?;
    let st = carrier(&sock).ok_or_else(|| anyhow::anyhow!("the bond's carrier did not come up"))?;
    anyhow::ensure!(
        st.runtime.queues.len() == queues as usize,
        "the bond serves {} queue(s), not {queues}",
        st.runtime.queues.len()
    );
    let bond_pid = lab
        .pid("bond")
        .ok_or_else(|| anyhow::anyhow!("no bond pid"))?;
    Ok((
        Bench {
            lab,
            host,
            tx_sink: vec!["b0".into(), "b1".into()],
            tx_sink_ns: far.clone(),
            rx_gen: (far, "b0".into()),
            bond_pid,
            queues,
        },
        sock,
    ))
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

fn saturation(
    queues: u32,
    busy_poll_us: u64,
    runs: usize,
    tick_ns: u64,
) -> anyhow::Result<Vec<ScaleRow>> {
    let (mut b, sock) = setup(queues, busy_poll_us)?;
    let mut rows = Vec::new();
    for dir in DIRS {
        let (mut fps, mut gens) = (Vec::new(), Vec::new());
        let (mut total, mut wall) = (Snapshot::default(), 0.0);
        let mut per_queue = vec![0u64; queues as usize];
        for _ in 0..runs {
            let (s0, q0) = Snapshot::take(b.bond_pid, &sock, tick_ns)?;
            let (f, g, rep) = measure(&mut b, dir, 0, RUN_SECS)?;
            gens.push(g);
            let (s1, q1) = Snapshot::take(b.bond_pid, &sock, tick_ns)?;
            let d = s1.since(&s0);
            total = Snapshot {
                sched_ns: total.sched_ns + d.sched_ns,
                user_ns: total.user_ns + d.user_ns,
                system_ns: total.system_ns + d.system_ns,
                frames: total.frames + d.frames,
                busy_passes: total.busy_passes + d.busy_passes,
                kicks: total.kicks + d.kicks,
                sleeps: total.sleeps + d.sleeps,
                dropped: total.dropped + d.dropped,
                socket_dropped: total.socket_dropped + d.socket_dropped,
            };
            wall += rep.seconds;
            for (acc, (a, z)) in per_queue.iter_mut().zip(q1.iter().zip(&q0)) {
                *acc += a.saturating_sub(*z);
            }
            fps.push(f);
        }
        let frames = total.frames.max(1) as f64;
        let sum_q = per_queue.iter().sum::<u64>().max(1) as f64;
        let row = ScaleRow {
            queues,
            busy_poll_us,
            direction: dir.to_string(),
            median_fps: median(&mut fps.clone()),
            generator_fps: median(&mut gens),
            bond_dropped: total.dropped,
            socket_dropped: total.socket_dropped,
            runs_fps: fps,
            worker_cores: ratio(total.sched_ns as f64 / 1e9, wall),
            fps_per_worker_core: ratio(frames, total.sched_ns as f64 / 1e9),
            user_ns_per_frame: total.user_ns as f64 / frames,
            system_ns_per_frame: total.system_ns as f64 / frames,
            frames_per_busy_pass: ratio(frames, total.busy_passes as f64),
            frames_per_kick: ratio(frames, total.kicks as f64),
            frames_per_sleep: ratio(frames, total.sleeps as f64),
            queue_share: per_queue.iter().map(|&n| n as f64 / sum_q).collect(),
        };
        eprintln!(
            "scaling: queues {} busy-poll {:>3} us {:<13} {:>9.0} fps (gen {:>9.0}; dropped: bond {}, sockets {}), workers {:.2} cores, {:>9.0} fps a worker-core, \
             user {:.0} + system {:.0} ns/frame, {:.1} frames a busy pass, {:.1} a kick, queues {:?}",
            row.queues,
            row.busy_poll_us,
            row.direction,
            row.median_fps,
            row.generator_fps,
            row.bond_dropped,
            row.socket_dropped,
            row.worker_cores,
            row.fps_per_worker_core,
            row.user_ns_per_frame,
            row.system_ns_per_frame,
            row.frames_per_busy_pass,
            row.frames_per_kick,
            row.queue_share
        );
        rows.push(row);
    }
    Ok(rows)
}

/// Fixed-rate runs on one queue with no busy polling, and the fit.
fn model(runs: usize, tick_ns: u64) -> anyhow::Result<Option<Model>> {
    let (mut b, sock) = setup(1, 0)?;
    let mut points = Vec::new();
    for rate in MODEL_RATES
        .iter()
        .flat_map(|&r| std::iter::repeat_n(r, runs.clamp(1, 3)))
    {
        let (s0, _) = Snapshot::take(b.bond_pid, &sock, tick_ns)?;
        measure(&mut b, DIRS[0], rate, MODEL_SECS)?;
        let (s1, _) = Snapshot::take(b.bond_pid, &sock, tick_ns)?;
        let d = s1.since(&s0);
        let p = CostPoint {
            offered_fps: rate,
            frames: d.frames,
            cpu_ns: d.sched_ns,
            user_ns: d.user_ns,
            busy_passes: d.busy_passes,
            kicks: d.kicks,
            sleeps: d.sleeps,
        };
        eprintln!("scaling model: {p:?}");
        points.push(p);
    }
    Ok(fit(points))
}

/// Least squares of cpu_ns on (frames, kicks, sleeps), no intercept, with
/// no coefficient below zero: the unconstrained fit over every subset of the
/// three, the best by residual among those whose coefficients are all
/// non-negative (the regressors left out get 0). None if no subset gives
/// one.
fn fit(points: Vec<CostPoint>) -> Option<Model> {
    let x: Vec<[f64; 3]> = points
        .iter()
        .map(|p| [p.frames as f64, p.kicks as f64, p.sleeps as f64])
        .collect();
    let y: Vec<f64> = points.iter().map(|p| p.cpu_ns as f64).collect();
    let sse = |coef: &[f64; 3]| -> f64 {
        x.iter()
            .zip(&y)
            .map(|(xi, yi)| {
                let e = coef[0] * xi[0] + coef[1] * xi[1] + coef[2] * xi[2] - yi;
                e * e
            })
            .sum()
    };
    let mut best: Option<([f64; 3], f64)> = None;
    for mask in 1u8..8 {
        let cols: Vec<usize> = (0..3).filter(|c| mask & (1 << c) != 0).collect();
        let Some(sol) = solve_normal(&x, &y, &cols) else {
            continue;
        };
        if sol.iter().any(|&c| c < 0.0) {
            continue;
        }
        let mut coef = [0.0f64; 3];
        for (&c, v) in cols.iter().zip(sol) {
            coef[c] = v;
        }
        let e = sse(&coef);
        if best.is_none_or(|(_, b)| e < b) {
            best = Some((coef, e));
        }
    }
    let (coef, e) = best?;
    let n = y.len().max(1) as f64;
    let mean = y.iter().sum::<f64>() / n;
    Some(Model {
        per_frame_ns: coef[0],
        per_kick_ns: coef[1],
        per_wakeup_ns: coef[2],
        relative_rms_error: ratio((e / n).sqrt(), mean),
        points,
    })
}

/// The least-squares coefficients of `y` on the columns `cols` of `x`
/// (normal equations, Gaussian elimination with partial pivoting); None if
/// they are singular.
fn solve_normal(x: &[[f64; 3]], y: &[f64], cols: &[usize]) -> Option<Vec<f64>> {
    let k = cols.len();
    // The augmented matrix [X'X | X'y].
    let mut m = vec![vec![0.0f64; k + 1]; k];
    for (xi, yi) in x.iter().zip(y) {
        for (r, &cr) in cols.iter().enumerate() {
            m[r][k] += xi[cr] * yi;
            for (c, &cc) in cols.iter().enumerate() {
                m[r][c] += xi[cr] * xi[cc];
            }
        }
    }
    for p in 0..k {
        let piv = (p..k).max_by(|&a, &b| m[a][p].abs().total_cmp(&m[b][p].abs()))?;
        if m[piv][p].abs() < 1e-9 * m[piv].iter().map(|v| v.abs()).fold(0.0, f64::max).max(1.0) {
            return None;
        }
        m.swap(p, piv);
        let pivot = m[p].clone();
        for (r, row) in m.iter_mut().enumerate() {
            if r != p {
                let f = row[p] / pivot[p];
                for (v, pv) in row.iter_mut().zip(&pivot).skip(p) {
                    *v -= f * pv;
                }
            }
        }
    }
    Some((0..k).map(|r| m[r][k] / m[r][r]).collect())
}

/// Nanoseconds a clock tick of /proc/PID/task/TID/stat (`getconf CLK_TCK`).
fn tick_ns() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse::<u64>().ok())
        .filter(|&hz| hz > 0)
        .map_or(10_000_000, |hz| 1_000_000_000 / hz)
}

/// Runs the scaling part and writes benches/results/scaling.{json,md}.
pub fn run(machine: &str, kernel: &str, runs: usize) -> anyhow::Result<()> {
    let tick = tick_ns();
    // The default busy polling (what an operator gets), then none (the
    // workers' CPU is then their work, not spinning between frames).
    let mut rows = Vec::new();
    for bp in [super::busy_poll_us(), 0] {
        for q in [1, 2] {
            rows.extend(saturation(q, bp, runs, tick)?);
        }
    }
    let model = model(runs, tick)?;
    let res = Results {
        machine: machine.to_string(),
        kernel: kernel.to_string(),
        frame_bytes: 64,
        flows: FLOWS,
        af_xdp_mode: "copy (veth)".into(),
        runs_per_point: runs,
        rows,
        model,
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../benches/results");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        dir.join("scaling.json"),
        serde_json::to_string_pretty(&res)?,
    )?;
    std::fs::write(dir.join("scaling.md"), markdown(&res))?;
    eprintln!("wrote {}", dir.join("scaling.md").display());
    Ok(())
}

/// 64-byte frames at line rate on 2 x 25 GbE: 84 bytes on the wire each
/// (preamble, FCS and gap included).
const LINE_RATE_FPS: f64 = 2.0 * 25e9 / (84.0 * 8.0);
const NIC_QUEUES: f64 = 16.0;

fn markdown(r: &Results) -> String {
    let mut o = format!(
        "# xbond scaling over queues\n\nMachine: {}; kernel {}; {}-byte frames, {} flows; AF_XDP {}; \
         balance-xor layer3+4 over two slaves; median of {} run(s) of {RUN_SECS} s at saturation. \
         One worker a queue; the generator and the sink on as many queues (flow f on queue f % queues). \
         Worker CPU is the worker threads' own (schedstat; user and system from stat, in clock ticks); \
         a worker-core is one CPU second of worker time. Generator, sink and the kernel's veth work \
         share the machine's cores with the workers, so frames/s cannot grow with the workers here: \
         frames a second per worker-core is the figure that shows scaling, best with busy polling off, \
         where a worker's CPU is its work and not its spinning.\n\n\
         | queues | busy poll (us) | direction | frames/s | generator frames/s | the limit | dropped by the bond / at its sockets | worker cores used | frames/s per worker-core | user ns/frame | system ns/frame | frames a busy pass | frames a TX system call | frames a sleep | queues' shares |\n\
         |---:|---:|---|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---|\n",
        r.machine, r.kernel, r.frame_bytes, r.flows, r.af_xdp_mode, r.runs_per_point
    );
    for x in &r.rows {
        let shares: Vec<String> = x
            .queue_share
            .iter()
            .map(|s| format!("{:.0}%", s * 100.0))
            .collect();
        let _ = writeln!(
            o,
            "| {} | {} | {} | {:.0} | {:.0} | {} | {} / {} | {:.2} | {:.0} | {:.0} | {:.0} | {:.1} | {:.1} | {:.1} | {} |",
            x.queues,
            x.busy_poll_us,
            x.direction,
            x.median_fps,
            x.generator_fps,
            // The bond kept up with what the generator sent, or not.
            if x.median_fps >= 0.95 * x.generator_fps {
                "the generator"
            } else {
                "the bond"
            },
            x.bond_dropped,
            x.socket_dropped,
            x.worker_cores,
            x.fps_per_worker_core,
            x.user_ns_per_frame,
            x.system_ns_per_frame,
            x.frames_per_busy_pass,
            x.frames_per_kick,
            x.frames_per_sleep,
            shares.join(" / ")
        );
    }
    o.push('\n');
    let mut bps: Vec<u64> = r.rows.iter().map(|x| x.busy_poll_us).collect();
    bps.dedup();
    for bp in bps {
        for dir in DIRS {
            let row = |q: u32| {
                r.rows
                    .iter()
                    .find(|x| x.queues == q && x.busy_poll_us == bp && x.direction == dir)
            };
            if let (Some(a), Some(b)) = (row(1), row(2)) {
                let _ = writeln!(
                    o,
                    "- busy poll {bp} us, {dir}: frames/s per worker-core with 2 queues / with 1: {:.2} \
                     (1.00 is linear scaling: two workers each doing what one did); frames/s: {:.2}.",
                    ratio(b.fps_per_worker_core, a.fps_per_worker_core),
                    ratio(b.median_fps, a.median_fps)
                );
            }
        }
    }
    o.push_str(&model_text(r));
    o
}

fn model_text(r: &Results) -> String {
    let mut o = String::from(
        "\n## Where a frame's cost goes, and a 2 x 25 GbE NIC with 16 queues\n\n\
         Runs at fixed offered rates on one queue with busy polling off (so the workers' CPU is work, \
         not spinning), host->slaves. The workers' CPU time fitted by least squares, \
         with no cost below zero, to frames, TX system calls and wake-ups (sleeps in poll(2)):\n\n\
         | offered frames/s | frames | worker CPU ms | busy passes | TX system calls | wake-ups |\n|---:|---:|---:|---:|---:|---:|\n",
    );
    let Some(m) = &r.model else {
        o.push_str("\nThe fit's equations were singular: no model.\n");
        return o;
    };
    for p in &m.points {
        let _ = writeln!(
            o,
            "| {} | {} | {:.1} | {} | {} | {} |",
            if p.offered_fps == 0 {
                "flat out".to_string()
            } else {
                p.offered_fps.to_string()
            },
            p.frames,
            p.cpu_ns as f64 / 1e6,
            p.busy_passes,
            p.kicks,
            p.sleeps
        );
    }
    let _ = writeln!(
        o,
        "\nFit: {:.0} ns a frame + {:.0} ns a TX system call + {:.0} ns a wake-up (RMS error {:.0}% of the mean).",
        m.per_frame_ns,
        m.per_kick_ns,
        m.per_wakeup_ns,
        m.relative_rms_error * 100.0
    );
    if m.per_frame_ns <= 0.0 {
        o.push_str("\nThe fit found no cost a frame: no projection is made from it.\n");
        return o;
    }
    // The fit against the saturation rows without busy polling: what their
    // kicks and wake-ups predict a frame costs, and what it cost.
    o.push_str(
        "\n| saturation row (busy poll 0) | predicted ns/frame | measured (user + system) |\n|---|---:|---:|\n",
    );
    for x in r.rows.iter().filter(|x| x.busy_poll_us == 0) {
        let per = |n: f64| if n > 0.0 { 1.0 / n } else { 0.0 };
        let predicted = m.per_frame_ns
            + m.per_kick_ns * per(x.frames_per_kick)
            + m.per_wakeup_ns * per(x.frames_per_sleep);
        let _ = writeln!(
            o,
            "| {} queue(s), {} | {:.0} | {:.0} |",
            x.queues,
            x.direction,
            predicted,
            x.user_ns_per_frame + x.system_ns_per_frame
        );
    }
    o.push_str(
        "\nWhere the measured cost is above the prediction, the rest is not in the model's terms: on \
         this machine the workers are pinned one a CPU (with 2 queues) beside the generator, the sink \
         and the veths' softirq work.\n",
    );
    for (what, v) in [
        ("TX system call", m.per_kick_ns),
        ("wake-up", m.per_wakeup_ns),
    ] {
        if v == 0.0 {
            let _ = writeln!(
                o,
                "\nThe cost a {what} is 0 in the fit: with it, the unconstrained fit gave a negative \
                 cost somewhere (on these points it cannot be told apart from the others), so it was \
                 left out and its cost is counted in the others."
            );
        }
    }
    // xbond's own work a frame: the user time of the flat-out runs (no busy
    // polling, so no spinning in it).
    let flat = m.points.iter().filter(|p| p.offered_fps == 0);
    let user = ratio(
        flat.clone().map(|p| p.user_ns).sum::<u64>() as f64,
        flat.map(|p| p.frames).sum::<u64>() as f64,
    );
    let per_core = NIC_QUEUES / LINE_RATE_FPS * 1e9;
    let _ = writeln!(
        o,
        "\nThe model. 64-byte frames at line rate on 2 x 25 GbE are {:.1} M frames/s: {:.1} ns a frame \
         for one core, {:.0} ns a frame for each of {NIC_QUEUES:.0} cores (one worker a queue). At that \
         rate every pass has a full batch and no worker sleeps, so the per-wake-up cost ({:.0} ns) \
         vanishes and the per-batch costs are shared by 64 frames.\n\n\
         - Copy mode, as measured here (the kernel copies each frame into an skb; that work is the \
         system time and most of the per-frame cost): {:.0} ns a frame, so a core forwards {:.2} M \
         frames/s and line rate would take {:.0} cores. Copy mode cannot carry this NIC.\n\
         - Zero copy (a NIC driver with AF_XDP zero-copy, which the worker binds first): the kernel's \
         copy goes, and what stays per frame is xbond's own work, the user time of the flat-out \
         runs above, {:.0} ns a frame (sampled by the clock tick, so within about a quarter here) (ring descriptors, the parse and the slave choice; criterion \
         puts the choice at 2 to 8 ns (benches/results/select.md)), plus the driver's descriptor work, not measured here. With a \
         TX system call per 64-frame batch ({:.0} ns / 64 = {:.1} ns a frame; with need_wakeup a \
         zero-copy driver asks for fewer) that is {:.0} ns a frame: {:.1} M frames/s a core, and \
         {NIC_QUEUES:.0} cores give {:.0} M frames/s against the {:.1} M of line rate.\n\n\
         Per frame: the parse, the choice, the ring descriptors (and in copy mode the kernel's copy). \
         Per batch: the TX system call and the ring index updates. Per wake-up: poll(2) and the \
         scheduler. Not in the model: the NIC driver's own per-frame cost, cache misses on frame \
         data at 16 queues, and RSS spreading unevenly over the queues.",
        LINE_RATE_FPS / 1e6,
        1e9 / LINE_RATE_FPS,
        per_core,
        m.per_wakeup_ns,
        m.per_frame_ns,
        1e3 / m.per_frame_ns,
        LINE_RATE_FPS * m.per_frame_ns / 1e9,
        user,
        m.per_kick_ns,
        m.per_kick_ns / 64.0,
        user + m.per_kick_ns / 64.0,
        1e3 / (user + m.per_kick_ns / 64.0),
        NIC_QUEUES * 1e3 / (user + m.per_kick_ns / 64.0),
        LINE_RATE_FPS / 1e6,
    );
    o
}
