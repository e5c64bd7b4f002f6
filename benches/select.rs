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

fn bench(c: &mut Criterion) {
    let fs = frames();
    let refs: Vec<&[u8]> = fs.iter().map(|f| f.as_slice()).collect();
    let mut out = [Choice::Drop; 64];
    let mut g = c.benchmark_group("select_batch_64");
    g.throughput(Throughput::Elements(64));
    for function in [HashFunction::Xxh3, HashFunction::Kernel] {
        for policy in HashPolicy::ALL {
            let p = plan(Mode::BalanceXor, *policy, function);
            let mut sel = Selector::default();
            g.bench_function(format!("balance-xor/{policy}/{function}"), |b| {
                b.iter(|| sel.select_batch(black_box(&p), black_box(&refs), &mut out))
            });
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
        let mut sel = Selector::default();
        g.bench_function(format!("{mode}"), |b| {
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
    benches();
    Criterion::default().configure_from_args().final_summary();
    // A filter (an argument that is neither an option nor an option's
    // value) measures only some.
    let args: Vec<String> = std::env::args().skip(1).collect();
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
