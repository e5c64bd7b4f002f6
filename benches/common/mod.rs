//! What the system benchmark and the soak share.

/// CPU time (ns) of every thread of a process, from schedstat.
pub fn cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// The CPU model and the machine's number of cores, e.g. "AMD EPYC, 2
/// cores", and how many of them the run may use when that is fewer (a run
/// under `taskset`): "AMD EPYC, 2 cores (run on 1)".
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("unknown")
        .trim()
        .to_string();
    let cores = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let usable = std::thread::available_parallelism().map_or(cores, |n| n.get());
    if usable < cores {
        format!("{model}, {cores} cores (run on {usable})")
    } else {
        format!("{model}, {cores} cores")
    }
}

/// CPU time of the threads of process `pid` whose name starts with
/// `prefix`: (schedstat ns, user ticks, system ticks), summed.
pub fn threads_cpu(pid: u32, prefix: &str) -> (u64, u64, u64) {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return (0, 0, 0);
    };
    let mut sum = (0, 0, 0);
    for t in tasks.flatten() {
        let p = t.path();
        let comm = std::fs::read_to_string(p.join("comm")).unwrap_or_default();
        if !comm.trim_end().starts_with(prefix) {
            continue;
        }
        let sched = std::fs::read_to_string(p.join("schedstat")).unwrap_or_default();
        sum.0 += sched
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        // stat: "pid (comm) state ..."; utime and stime are the 14th and
        // 15th fields, the 12th and 13th after the comm's ')'.
        let stat = std::fs::read_to_string(p.join("stat")).unwrap_or_default();
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<u64> = rest
            .split_whitespace()
            .skip(11)
            .take(2)
            .filter_map(|v| v.parse().ok())
            .collect();
        if let [u, s] = f[..] {
            sum.1 += u;
            sum.2 += s;
        }
    }
    sum
}
