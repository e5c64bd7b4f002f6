//! Per-frame costs of the hot path: slave selection per mode and hash policy
//! on batches of 64 realistic frames (IPv4/IPv6, VLAN-tagged, TCP/UDP),
//! frame classification (headers, ARP/ND tap test, TLB bucket), and the
//! LACPDU codec.
//!
//! Run: `cargo bench -p xbond-core --bench select`. Throughput is reported in
//! frames (elements), so criterion prints the time per frame. A run without
//! a filter also writes `benches/results/select.md`: every benchmark's
//! median per batch and per frame, and its fastest sample (on a shared,
//! noisy machine the least disturbed figure), with the machine.

#[allow(dead_code)] // cpu_ns is the system benchmark's and the soak's
mod common;

use std::hint::black_box;

use criterion::{criterion_group, Criterion, Throughput};
use xbond_core::options::{HashFunction, HashPolicy, Mode};
use xbond_core::plan::{Choice, Selector, TxPlan};

fn frames() -> Vec<Vec<u8>> {
    use etherparse::PacketBuilder;
    let mut out = Vec::new();
    for i in 0..64u16 {
        let mut f = Vec::new();
        let src = [2, 0, 0, 0, (i >> 8) as u8, i as u8];
        let dst = [2, 0, 0, 0, 0xff, 1];
        let payload = [0u8; 18];
        let res = match i % 4 {
            0 => PacketBuilder::ethernet2(src, dst)
                .ipv4([10, 0, (i >> 8) as u8, i as u8], [10, 1, 0, 1], 64)
                .udp(1024 + i, 53)
                .write(&mut f, &payload),
            1 => PacketBuilder::ethernet2(src, dst)
                .ipv4([10, 0, 0, i as u8], [10, 1, 0, 2], 64)
                .tcp(40000 + i, 443, 1, 64000)
                .write(&mut f, &payload),
            2 => PacketBuilder::ethernet2(src, dst)
                .single_vlan(100.try_into().expect("vlan id"))
                .ipv4([10, 0, 1, i as u8], [10, 1, 0, 3], 64)
                .udp(5000 + i, 4789)
                .write(&mut f, &payload),
            _ => PacketBuilder::ethernet2(src, dst)
                .ipv6(
                    [0xfd; 16],
                    [
                        0xfe,
                        0,
                        0,
                        0,
                        0,
                        0,
                        0,
                        0,
                        0,
                        0,
                        0,
                        0,
                        0,
                        0,
                        (i >> 8) as u8,
                        i as u8,
                    ],
                    64,
                )
                .tcp(30000 + i, 80, 1, 64000)
                .write(&mut f, &payload),
        };
        res.expect("build frame");
        out.push(f);
    }
    out
}

fn plan(mode: Mode, policy: HashPolicy, function: HashFunction) -> TxPlan {
    let mut p = TxPlan::empty(mode);
    p.tx_slaves[..2].copy_from_slice(&[0, 1]);
    p.tx_count = 2;
    p.active = Some(0);
    p.policy = policy;
    p.function = function;
    p
}

/// The selection cases, named as criterion names them (after
/// `select_batch_64/`): every (policy, function) of balance-xor, then the
/// modes that do not hash.
fn cases() -> Vec<(String, TxPlan)> {
    let mut out = Vec::new();
    for function in [HashFunction::Xxh3, HashFunction::Kernel] {
        for policy in HashPolicy::ALL {
            out.push((
                format!("balance-xor/{policy}/{function}"),
                plan(Mode::BalanceXor, *policy, function),
            ));
        }
    }
    for mode in [
        Mode::BalanceRr,
        Mode::ActiveBackup,
        Mode::Broadcast,
        Mode::BalanceTlb,
    ] {
        let mut p = plan(mode, HashPolicy::Layer2, HashFunction::Xxh3);
        // balance-tlb: buckets spread over both slaves, as after a rebalance.
        for (b, s) in p.tlb_table.iter_mut().enumerate() {
            *s = (b % 2) as u8;
        }
        out.push((format!("{mode}"), p));
    }
    out
}

fn bench(c: &mut Criterion) {
    let fs = frames();
    let refs: Vec<&[u8]> = fs.iter().map(|f| f.as_slice()).collect();
    let mut out = [Choice::Drop; 64];
    let mut g = c.benchmark_group("select_batch_64");
    g.throughput(Throughput::Elements(64));
    for (name, p) in cases() {
        let mut sel = Selector::default();
        g.bench_function(name, |b| {
            b.iter(|| sel.select_batch(black_box(&p), black_box(&refs), &mut out))
        });
    }
    g.finish();
}

fn classify(c: &mut Criterion) {
    let fs = frames();
    let mut g = c.benchmark_group("classify_64");
    g.throughput(Throughput::Elements(64));
    g.bench_function("eth+flow parse", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for f in &fs {
                if let Some(e) = xbond_core::wire::EthInfo::parse(black_box(f)) {
                    n += usize::from(xbond_core::wire::parse_flow(f, &e, false).is_some());
                }
            }
            n
        })
    });
    g.bench_function("is_arp_or_nd (monitor tap)", |b| {
        b.iter(|| {
            fs.iter()
                .filter(|f| xbond_core::wire::is_arp_or_nd(black_box(f)))
                .count()
        })
    });
    g.bench_function("tlb_bucket", |b| {
        b.iter(|| {
            fs.iter()
                .filter_map(|f| xbond_core::alb::tlb_bucket(black_box(f)))
                .count()
        })
    });
    g.finish();
}

fn lacpdu(c: &mut Criterion) {
    use xbond_core::lacp::wire::{parse, Lacpdu, PortInfo, PortState};
    use xbond_core::options::MacAddr;
    let pdu = Lacpdu {
        version: 1,
        actor: PortInfo {
            system_priority: 65535,
            system: MacAddr([2, 0, 0, 0, 0, 1]),
            key: 15,
            port_priority: 255,
            port: 1,
            state: PortState(0x3d),
        },
        partner: PortInfo::default(),
        collector_max_delay: 0,
    };
    let frame = pdu.emit(MacAddr([2, 0, 0, 0, 0, 1]));
    let mut g = c.benchmark_group("lacpdu");
    g.throughput(Throughput::Elements(1));
    g.bench_function("parse", |b| b.iter(|| parse(black_box(&frame))));
    g.bench_function("emit", |b| {
        b.iter(|| black_box(&pdu).emit(MacAddr([2, 0, 0, 0, 0, 1])))
    });
    g.finish();
}

criterion_group!(benches, bench, classify, lacpdu);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--instructions-case") {
        let (Some(name), Some(Ok(reps))) = (args.get(i + 1), args.get(i + 2).map(|r| r.parse()))
        else {
            eprintln!("--instructions-case takes a benchmark name and a repetition count");
            std::process::exit(2);
        };
        if let Err(e) = run_case(name, reps) {
            eprintln!("{e}");
            std::process::exit(2);
        }
        return;
    }
    if args.iter().any(|a| a == "--instructions") {
        if let Err(e) = count_instructions() {
            eprintln!("instruction counts not written: {e}");
            std::process::exit(1);
        }
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
    // A filter (an argument that is neither an option nor an option's
    // value) measures only some.
    let takes_text = [
        "--save-baseline",
        "--baseline",
        "--load-baseline",
        "--color",
    ];
    let filtered = args.iter().enumerate().any(|(i, a)| {
        !a.starts_with('-')
            && a.parse::<f64>().is_err()
            && !(i > 0 && takes_text.contains(&args[i - 1].as_str()))
    });
    if !filtered && !std::env::args().any(|a| a == "--list" || a == "--test") {
        if let Err(e) = write_results() {
            eprintln!("benches/results/select.md not written: {e}");
        }
    }
}

/// Criterion's output directory: `$CARGO_TARGET_DIR/criterion`, or the
/// workspace's `target/criterion`.
fn criterion_dir() -> std::path::PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"),
        std::path::PathBuf::from,
    );
    target.join("criterion")
}

/// One line per benchmark of this run, from criterion's files.
fn write_results() -> Result<(), Box<dyn std::error::Error>> {
    use serde_json::Value;
    let mut rows = Vec::new();
    for group in ["select_batch_64", "classify_64", "lacpdu"] {
        let Ok(dirs) = std::fs::read_dir(criterion_dir().join(group)) else {
            continue;
        };
        for d in dirs.flatten() {
            let new = d.path().join("new");
            let read = |f: &str| -> Option<Value> {
                serde_json::from_str(&std::fs::read_to_string(new.join(f)).ok()?).ok()
            };
            let (Some(id), Some(est), Some(sample)) = (
                read("benchmark.json"),
                read("estimates.json"),
                read("sample.json"),
            ) else {
                continue;
            };
            let name = id["full_id"].as_str().unwrap_or("?").to_string();
            let frames = id["throughput"]["Elements"].as_f64().unwrap_or(1.0);
            let median = est["median"]["point_estimate"].as_f64().unwrap_or(0.0);
            let fastest = sample["iters"]
                .as_array()
                .into_iter()
                .flatten()
                .zip(sample["times"].as_array().into_iter().flatten())
                .filter_map(|(i, t)| Some(t.as_f64()? / i.as_f64()?))
                .fold(f64::INFINITY, f64::min);
            rows.push((name, frames, median, fastest));
        }
    }
    if rows.is_empty() {
        return Err("no criterion results found".into());
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let machine = common::machine();
    let mut o = format!(
        "# Selection, classification and LACPDU codec (criterion)\n\n\
         Machine: {machine}. `cargo bench -p xbond-core --bench select`. \
         No AF_XDP: the pure core over 64 frames in memory (IPv4 UDP, IPv4 TCP, \
         VLAN-tagged IPv4 UDP, IPv6 TCP; 60 to 92 bytes), two slaves. \
         Per batch and per frame (element); the fastest sample is the least \
         disturbed figure on a shared machine, the median the typical one.\n\n\
         | benchmark | median per batch (ns) | median per frame (ns) | fastest sample per frame (ns) |\n|---|---:|---:|---:|\n"
    );
    for (name, frames, median, fastest) in rows {
        o.push_str(&format!(
            "| {name} | {median:.1} | {:.2} | {:.2} |\n",
            median / frames,
            fastest / frames
        ));
    }
    let out =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../benches/results/select.md");
    std::fs::write(&out, o)?;
    eprintln!("wrote {}", out.display());
    Ok(())
}

/// Batches run in each of the two callgrind runs of a case. The figure is
/// the difference of the two counts over the difference of the batches, so
/// what runs once (start-up, building the frames, the first batch's cold
/// code) cancels.
const INSTR_REPS: [u64; 2] = [20, 100];

/// The names `--instructions` measures: every selection case and tlb's
/// bucket.
fn instruction_cases() -> Vec<String> {
    let mut names: Vec<String> = cases()
        .into_iter()
        .map(|(n, _)| format!("select_batch_64/{n}"))
        .collect();
    names.push("classify_64/tlb_bucket".into());
    names.sort();
    names
}

/// Runs `work` `reps` times: callgrind counts only inside this function
/// (`--toggle-collect`).
#[inline(never)]
fn measured(work: &mut dyn FnMut(), reps: u64) {
    for _ in 0..reps {
        work();
    }
}

/// The child of `--instructions`: one case, once to warm, then `reps`
/// batches in [`measured`].
fn run_case(name: &str, reps: u64) -> Result<(), String> {
    let fs = frames();
    if name == "classify_64/tlb_bucket" {
        let mut once = || {
            black_box(
                fs.iter()
                    .filter_map(|f| xbond_core::alb::tlb_bucket(black_box(f)))
                    .count(),
            );
        };
        once();
        measured(&mut once, reps);
        return Ok(());
    }
    let Some((_, p)) = cases()
        .into_iter()
        .find(|(n, _)| format!("select_batch_64/{n}") == name)
    else {
        return Err(format!(
            "no benchmark {name:?}; valid: {}",
            instruction_cases().join(", ")
        ));
    };
    let refs: Vec<&[u8]> = fs.iter().map(|f| f.as_slice()).collect();
    let mut out = [Choice::Drop; 64];
    let mut sel = Selector::default();
    let mut once = || sel.select_batch(black_box(&p), black_box(&refs), black_box(&mut out));
    once();
    measured(&mut once, reps);
    Ok(())
}

/// The `totals:` (or `summary:`) count of a callgrind output file.
fn callgrind_total(text: &str) -> Option<u64> {
    ["totals:", "summary:"].iter().find_map(|key| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
    })
}

/// The first line a command prints, or "unknown".
fn version_of(cmd: &str, arg: &str) -> String {
    std::process::Command::new(cmd)
        .arg(arg)
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

/// `--instructions`: instructions per frame of every selection case, counted
/// by callgrind, which counts the same for the same binary whatever else the
/// machine does: the figure that compares commits where the time per frame
/// drifts from day to day. Writes `benches/results/select-instructions.md`.
fn count_instructions() -> Result<(), Box<dyn std::error::Error>> {
    use std::process::{Command, Stdio};
    let exe = std::env::current_exe()?;
    let dir = std::env::temp_dir().join(format!("xbond-callgrind-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut rows = Vec::new();
    let result = (|| -> Result<(), Box<dyn std::error::Error>> {
        for name in instruction_cases() {
            let mut counts = [0u64; 2];
            for (count, reps) in counts.iter_mut().zip(INSTR_REPS) {
                let file = dir.join("callgrind.out");
                let run = Command::new("valgrind")
                    .args([
                        "--tool=callgrind",
                        "--collect-atstart=no",
                        "--toggle-collect=*measured*",
                    ])
                    .arg(format!("--callgrind-out-file={}", file.display()))
                    .arg(&exe)
                    .args(["--instructions-case", &name, &reps.to_string()])
                    .stdout(Stdio::null())
                    .output()
                    .map_err(|e| format!("valgrind (Debian's valgrind package): {e}"))?;
                if !run.status.success() {
                    return Err(format!(
                        "valgrind on {name}: {}\n{}",
                        run.status,
                        String::from_utf8_lossy(&run.stderr)
                    )
                    .into());
                }
                let text = std::fs::read_to_string(&file)?;
                *count = callgrind_total(&text)
                    .ok_or_else(|| format!("{}: no totals line", file.display()))?;
            }
            let frames = (INSTR_REPS[1] - INSTR_REPS[0]) * 64;
            let per_frame = counts[1].saturating_sub(counts[0]) as f64 / frames as f64;
            eprintln!("{name}: {per_frame:.1} instructions a frame");
            rows.push((name, per_frame));
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result?;
    let mut o = format!(
        "# Selection: instructions per frame (callgrind)\n\n\
         Machine: {}; {}; {}. `cargo bench -p xbond-core --bench select -- --instructions`. \
         The same 64 frames and two slaves as `select.md`; callgrind counts the \
         instructions of {} and of {} batches, and the table gives the difference per frame. \
         The count does not move with the machine's load or clock, so it compares \
         commits; the time a frame takes is in `select.md`.\n\n\
         | benchmark | instructions per frame |\n|---|---:|\n",
        common::machine(),
        version_of("rustc", "-V"),
        version_of("valgrind", "--version"),
        INSTR_REPS[0],
        INSTR_REPS[1],
    );
    for (name, per_frame) in rows {
        o.push_str(&format!("| {name} | {per_frame:.1} |\n"));
    }
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../benches/results/select-instructions.md");
    std::fs::write(&out, o)?;
    eprintln!("wrote {}", out.display());
    Ok(())
}
