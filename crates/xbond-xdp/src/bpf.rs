//! The XDP program of bpf/xbond.bpf.c: one loaded instance per interface, with
//! its own XSKMAP, config and per-CPU counters, attached through a bpf_link so
//! that it goes away with the process.

use std::os::fd::{AsFd, RawFd};

use libbpf_rs::{Link, MapCore, MapFlags, MapHandle, Object, ObjectBuilder};

use crate::error::{Error, Result};

static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/xbond.bpf.o"));

/// How the kernel runs the program on an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachMode {
    /// In the driver (native XDP).
    Native,
    /// In the generic (skb) path.
    Generic,
    /// Could not be determined.
    Unknown,
}

impl AttachMode {
    /// "native", "generic" or "unknown".
    pub fn as_str(self) -> &'static str {
        match self {
            AttachMode::Native => "native",
            AttachMode::Generic => "generic",
            AttachMode::Unknown => "unknown",
        }
    }
}

/// The program's counters, summed over CPUs (indices as in xbond.bpf.c).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct XdpCounters {
    /// Frames redirected to an AF_XDP socket.
    pub redirected: u64,
    /// Slow-protocol frames passed to the kernel.
    pub passed_slow: u64,
    /// Frames dropped because the interface must not deliver now.
    pub dropped_inactive: u64,
    /// Frames dropped because no socket serves their queue.
    pub dropped_no_socket: u64,
    /// Frames shorter than an Ethernet header.
    pub dropped_runt: u64,
}

/// The program attached to one interface.
#[derive(Debug)]
pub struct XdpProgram {
    iface: String,
    mode: AttachMode,
    xsks: MapHandle,
    cfg: MapHandle,
    counters: MapHandle,
    // Dropped after the maps; detaches the program.
    _link: Link,
    _obj: Object,
}

impl XdpProgram {
    /// Loads the program and attaches it to `iface` (index `ifindex`) through
    /// a bpf_link. Native mode where the driver supports it, generic otherwise.
    pub fn attach(iface: &str, ifindex: u32) -> Result<XdpProgram> {
        let bpf = |op: &'static str| {
            let iface = iface.to_string();
            move |source| Error::Bpf { op, iface, source }
        };
        let open = ObjectBuilder::default()
            .open_memory(OBJECT)
            .map_err(bpf("open BPF object"))?;
        let obj = open
            .load()
            .map_err(bpf("load BPF object (BPF_PROG_LOAD)"))?;
        let prog = obj
            .progs_mut()
            .find(|p| p.name() == "xbond_xdp")
            .ok_or_else(|| Error::Unsupported("BPF object has no program xbond_xdp".into()))?;
        let ifindex_i32 = i32::try_from(ifindex)
            .map_err(|_| Error::Unsupported(format!("ifindex {ifindex} out of range")))?;
        let link = prog
            .attach_xdp(ifindex_i32)
            .map_err(bpf("attach XDP (BPF_LINK_CREATE)"))?;
        let mode = match libbpf_rs::Xdp::new(prog.as_fd())
            .query(ifindex_i32, libbpf_rs::XdpFlags::empty())
        {
            Ok(q) if q.attach_mode == 1 => AttachMode::Native,
            Ok(q) if q.attach_mode == 2 => AttachMode::Generic,
            _ => AttachMode::Unknown,
        };
        let handle = |name: &str| -> Result<MapHandle> {
            let map = obj
                .maps()
                .find(|m| m.name() == name)
                .ok_or_else(|| Error::Unsupported(format!("BPF object has no map {name}")))?;
            MapHandle::try_from(&map).map_err(bpf("dup BPF map fd"))
        };
        let xsks = handle("xsks")?;
        let cfg = handle("cfg")?;
        let counters = handle("counters")?;
        Ok(XdpProgram {
            iface: iface.to_string(),
            mode,
            xsks,
            cfg,
            counters,
            _link: link,
            _obj: obj,
        })
    }

    /// How the program runs.
    pub fn mode(&self) -> AttachMode {
        self.mode
    }

    /// Sets whether data frames are delivered to the sockets (`deliver`),
    /// whether slow-protocol frames go to the kernel (`pass_slow`), and
    /// whether ARP/ND frames reach the socket even when not delivering
    /// (`tap`, for the ARP/NS monitor).
    pub fn configure(&self, deliver: bool, pass_slow: bool, tap: bool) -> Result<()> {
        let mut v = [0u8; 12];
        v[..4].copy_from_slice(&u32::from(deliver).to_ne_bytes());
        v[4..8].copy_from_slice(&u32::from(pass_slow).to_ne_bytes());
        v[8..].copy_from_slice(&u32::from(tap).to_ne_bytes());
        self.cfg
            .update(&0u32.to_ne_bytes(), &v, MapFlags::ANY)
            .map_err(|source| Error::Bpf {
                op: "update BPF map cfg",
                iface: self.iface.clone(),
                source,
            })
    }

    /// Registers the AF_XDP socket `fd` for RX queue `queue`.
    pub fn register_socket(&self, queue: u32, fd: RawFd) -> Result<()> {
        self.xsks
            .update(&queue.to_ne_bytes(), &fd.to_ne_bytes(), MapFlags::ANY)
            .map_err(|source| Error::Bpf {
                op: "update XSKMAP",
                iface: self.iface.clone(),
                source,
            })
    }

    /// Reads the counters, summed over CPUs.
    pub fn counters(&self) -> XdpCounters {
        let read = |idx: u32| -> u64 {
            match self
                .counters
                .lookup_percpu(&idx.to_ne_bytes(), MapFlags::ANY)
            {
                Ok(Some(per_cpu)) => per_cpu
                    .iter()
                    .filter_map(|v| v.get(..8).and_then(|b| b.try_into().ok()))
                    .map(u64::from_ne_bytes)
                    .sum(),
                _ => 0,
            }
        };
        XdpCounters {
            redirected: read(0),
            passed_slow: read(1),
            dropped_inactive: read(2),
            dropped_no_socket: read(3),
            dropped_runt: read(4),
        }
    }
}
