//! An AF_XDP traffic generator and sink, for the benchmark and `xbond
//! pktgen`: one socket with its own UMEM per interface (queue 0), frames
//! written from per-flow templates with a sequence number patched in, TX in
//! batches with one kick per batch; the sink attaches the xbond XDP program to
//! redirect every frame to its socket and counts what a caller-supplied
//! parser recognises.

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use xsk_rs::config::{
    BindFlags, FrameSize, Interface, LibxdpFlags, QueueSize, SocketConfig, UmemConfig,
};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, Socket, TxQueue, Umem};

use crate::bpf::XdpProgram;
use crate::error::{Error, Result};
use crate::sys::{kick_tx, poll_readable};

const FRAMES: u32 = 8192;
const RING: u32 = 2048;
const BATCH: usize = 64;

fn xerr(op: &'static str, iface: &str, e: impl std::fmt::Display) -> Error {
    Error::sys(op, iface, std::io::Error::other(e.to_string()))
}

/// One AF_XDP socket with its own UMEM.
pub struct XskPort {
    name: String,
    umem: Umem,
    free: Vec<FrameDesc>,
    tx: TxQueue,
    rx: RxQueue,
    fq: FillQueue,
    cq: CompQueue,
    _prog: Option<XdpProgram>,
    in_flight: usize,
}

impl std::fmt::Debug for XskPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XskPort").field("name", &self.name).finish()
    }
}

impl XskPort {
    /// Opens a socket on queue 0 of `iface` (copy mode). With `receive`, the
    /// xbond XDP program is attached to redirect every frame to it.
    pub fn open(iface: &str, ifindex: u32, receive: bool) -> Result<XskPort> {
        let ring = QueueSize::new(RING).map_err(|e| xerr("ring size", iface, e))?;
        let cfg = UmemConfig::builder()
            .frame_size(FrameSize::new(2048).map_err(|e| xerr("frame size", iface, e))?)
            .fill_queue_size(ring)
            .comp_queue_size(ring)
            .build()
            .map_err(|e| xerr("UMEM config", iface, e))?;
        let count = std::num::NonZeroU32::new(FRAMES)
            .ok_or_else(|| Error::Unsupported("no frames".into()))?;
        let (umem, mut free) =
            Umem::new(cfg, count, false).map_err(|e| xerr("create UMEM", iface, e))?;
        let sock_cfg = SocketConfig::builder()
            .rx_queue_size(ring)
            .tx_queue_size(ring)
            .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
            .bind_flags(BindFlags::XDP_COPY | BindFlags::XDP_USE_NEED_WAKEUP)
            .build();
        // The program goes on before the socket is bound, as in the worker
        // (veth sets up its XDP receive path when the program is attached).
        let prog = if receive {
            let p = XdpProgram::attach(iface, ifindex)?;
            p.configure(true, false, false)?;
            Some(p)
        } else {
            None
        };
        let ifc: Interface = iface
            .parse()
            .map_err(|_| Error::NoSuchInterface(iface.to_string()))?;
        // SAFETY: INHIBIT_PROG_LOAD is set and this UMEM binds only this pair.
        let (tx, rx, rings) = unsafe { Socket::new(sock_cfg, &umem, &ifc, 0) }
            .map_err(|e| xerr("bind AF_XDP socket", iface, e))?;
        let (mut fq, cq) =
            rings.ok_or_else(|| Error::Unsupported(format!("{iface} queue 0 already bound")))?;
        if let Some(p) = &prog {
            p.register_socket(0, rx.fd().as_raw_fd())?;
            // Half the frames wait in the fill ring for received data.
            let fill: Vec<FrameDesc> = free.split_off(free.len() / 2);
            // SAFETY: the frames are fresh from this UMEM and owned by nobody.
            let placed = unsafe { fq.produce(&fill[..RING as usize]) };
            free.extend_from_slice(&fill[placed..]);
        }
        Ok(XskPort {
            name: iface.to_string(),
            umem,
            free,
            tx,
            rx,
            fq,
            cq,
            _prog: prog,
            in_flight: 0,
        })
    }

    fn reap(&mut self) {
        let mut done = [FrameDesc::default(); BATCH * 4];
        // SAFETY: completed descriptors belong to this UMEM; the kernel is done.
        let n = unsafe { self.cq.consume(&mut done) };
        self.in_flight -= n.min(self.in_flight);
        self.free.extend_from_slice(&done[..n]);
    }
}

/// What to send.
#[derive(Debug, Clone)]
pub struct GenSpec {
    /// One template frame per flow; frame `seq` uses template `seq % len`.
    pub templates: Vec<Vec<u8>>,
    /// Offset of the 8-byte big-endian sequence number in each template.
    pub seq_at: usize,
    /// Frames to send (0 = until `duration`).
    pub count: u64,
    /// Frames per second (0 = flat out).
    pub rate: u64,
    /// Longest run time.
    pub duration: Duration,
}

/// What the generator did.
#[derive(Debug, Clone, Copy, Default)]
pub struct GenReport {
    /// Frames placed on the TX ring and completed.
    pub sent: u64,
    /// Seconds from the first to the last frame.
    pub seconds: f64,
}

/// Sends `spec` on `port`.
pub fn generate(port: &mut XskPort, spec: &GenSpec) -> Result<GenReport> {
    if spec.templates.is_empty() {
        return Err(Error::Unsupported("no frame templates".into()));
    }
    let start = Instant::now();
    let mut seq: u64 = 0;
    let mut batch = [FrameDesc::default(); BATCH];
    let mut last_produce = start;
    let limit = if spec.count == 0 {
        u64::MAX
    } else {
        spec.count
    };
    while seq < limit && start.elapsed() < spec.duration {
        port.reap();
        let mut want = BATCH.min((limit - seq) as usize);
        if spec.rate > 0 {
            let due = (start.elapsed().as_secs_f64() * spec.rate as f64) as u64;
            want = want.min(due.saturating_sub(seq) as usize);
            if want == 0 {
                std::hint::spin_loop();
                continue;
            }
        }
        let room = port.tx.nb_free(want as u32) as usize;
        let k = want.min(room).min(port.free.len());
        if k == 0 {
            let _ = kick_tx(port.tx.fd().as_raw_fd());
            continue;
        }
        for slot in batch.iter_mut().take(k) {
            let Some(mut d) = port.free.pop() else { break };
            let t = &spec.templates[(seq % spec.templates.len() as u64) as usize];
            {
                // SAFETY: `d` is a free frame of this UMEM: no ring holds it.
                let mut data = unsafe { port.umem.data_mut(&mut d) };
                let mut cur = data.cursor();
                cur.set_pos(0);
                let _ = std::io::Write::write_all(&mut cur, t);
            }
            {
                // SAFETY: as above.
                let mut data = unsafe { port.umem.data_mut(&mut d) };
                if let Some(s) = data.contents_mut().get_mut(spec.seq_at..spec.seq_at + 8) {
                    s.copy_from_slice(&seq.to_be_bytes());
                }
            }
            *slot = d;
            seq += 1;
        }
        // SAFETY: the frames are this UMEM's and owned by us until completion.
        let placed = unsafe { port.tx.produce(&batch[..k]) };
        port.free.extend_from_slice(&batch[placed..k]);
        seq -= (k - placed) as u64;
        port.in_flight += placed;
        last_produce = Instant::now();
        let _ = kick_tx(port.tx.fd().as_raw_fd());
    }
    // Let the kernel drain the ring.
    let drain_until = Instant::now() + Duration::from_secs(2);
    while port.in_flight > 0 && Instant::now() < drain_until {
        let _ = kick_tx(port.tx.fd().as_raw_fd());
        port.reap();
    }
    Ok(GenReport {
        sent: seq,
        // First to last frame: the drain above is not sending time.
        seconds: last_produce.duration_since(start).as_secs_f64(),
    })
}

/// Receives on `ports` until `duration` has passed, or `idle` passes with no
/// frame after the first; calls `on_frame(port index, frame)` for each.
pub fn receive(
    ports: &mut [XskPort],
    duration: Duration,
    idle: Duration,
    mut on_frame: impl FnMut(usize, &[u8]),
) -> Result<()> {
    let start = Instant::now();
    let mut last = None::<Instant>;
    let mut descs = [FrameDesc::default(); BATCH];
    loop {
        let mut got = 0;
        for (i, p) in ports.iter_mut().enumerate() {
            // SAFETY: received frames belong to this UMEM and are ours now.
            let n = unsafe { p.rx.consume(&mut descs) };
            for d in &descs[..n] {
                // SAFETY: `d` was just received and is not on any ring.
                let data = unsafe { p.umem.data(d) }.contents();
                on_frame(i, data);
            }
            if n > 0 {
                // SAFETY: the frames go straight back to this UMEM's fill ring.
                let placed = unsafe { p.fq.produce(&descs[..n]) };
                p.free.extend_from_slice(&descs[placed..n]);
                if p.fq.needs_wakeup() {
                    let _ = p.fq.wakeup(p.rx.fd_mut(), 0);
                }
            }
            got += n;
        }
        let now = Instant::now();
        if got > 0 {
            last = Some(now);
            continue;
        }
        if now.duration_since(start) >= duration
            || last.is_some_and(|l| now.duration_since(l) >= idle)
        {
            return Ok(());
        }
        let fds: Vec<i32> = ports.iter().map(|p| p.rx.fd().as_raw_fd()).collect();
        poll_readable(&fds, 5);
    }
}
