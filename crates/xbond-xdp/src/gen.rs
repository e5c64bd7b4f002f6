//! An AF_XDP traffic generator and sink, for the benchmark and `xbond
//! pktgen`: one socket with its own UMEM per interface and queue, frames
//! written from per-flow templates with a sequence number patched in, TX in
//! batches with one kick per batch; the sink attaches the xbond XDP program to
//! redirect every frame to its sockets and counts what a caller-supplied
//! parser recognises. Over several queues a flow keeps to one (flow `f` on
//! queue `f % queues`), as a NIC's RSS would keep it.

use std::time::{Duration, Instant};

use xbond_core::datapath::{Frames, Port};

use crate::bpf::XdpProgram;
use crate::error::{Error, Result};
use crate::sys::poll;
use crate::xsk::{create_umem, BindMode, UmemFrames, XdpFrame, XdpPort, RING_SIZE};

const FRAMES: u32 = 8192;
const BATCH: usize = 64;

/// One AF_XDP socket with its own UMEM.
pub struct XskPort {
    mem: UmemFrames,
    free: Vec<XdpFrame>,
    port: XdpPort,
    _prog: Option<XdpProgram>,
    in_flight: usize,
}

impl std::fmt::Debug for XskPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XskPort")
            .field("name", &self.port.name())
            .finish()
    }
}

impl XskPort {
    /// Opens a socket on queue 0 of `iface` (copy mode). With `receive`, the
    /// xbond XDP program is attached to redirect every frame to it.
    pub fn open(iface: &str, ifindex: u32, receive: bool) -> Result<XskPort> {
        Ok(XskPort::open_queues(iface, ifindex, 1, receive)?.remove(0))
    }

    /// Opens a socket on each of queues `0..queues` of `iface` (copy mode),
    /// each with its own UMEM. With `receive`, the xbond XDP program is
    /// attached to redirect every frame to the socket of its queue.
    pub fn open_queues(
        iface: &str,
        ifindex: u32,
        queues: u32,
        receive: bool,
    ) -> Result<Vec<XskPort>> {
        // The program goes on before the sockets are bound, as in the worker
        // (veth sets up its XDP receive path when the program is attached).
        let prog = if receive {
            let p = XdpProgram::attach(iface, ifindex)?;
            p.configure(true, false, false)?;
            Some(p)
        } else {
            None
        };
        let mut ports = Vec::new();
        for q in 0..queues.max(1) {
            let (umem, mut free) = create_umem(iface, FRAMES, 0)?;
            let mut port = XdpPort::bind(&umem, 0, iface, q, BindMode::Copy, false)?;
            if let Some(p) = &prog {
                p.register_socket(q, port.fd())?;
                // Half the frames wait in the fill ring for received data.
                let mut fill =
                    free.split_off(free.len() - (RING_SIZE as usize).min(free.len() / 2));
                port.fill(&mut fill);
                free.append(&mut fill);
            }
            ports.push(XskPort {
                mem: UmemFrames::new(umem),
                free,
                port,
                _prog: None,
                in_flight: 0,
            });
        }
        // The first port holds the program (it detaches when the ports are
        // dropped, the first first).
        if let Some(first) = ports.first_mut() {
            first._prog = prog;
        }
        Ok(ports)
    }

    fn reap(&mut self) {
        let n = self.port.complete(&mut self.free);
        self.in_flight -= n.min(self.in_flight);
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
#[derive(Debug, Clone, Default)]
pub struct GenReport {
    /// Frames placed on the TX ring and completed.
    pub sent: u64,
    /// Seconds from the first to the last frame.
    pub seconds: f64,
    /// With a rate: the schedule's start, in nanoseconds since the Unix
    /// epoch. Frame `seq` is due `seq / rate` seconds after it and written
    /// then, unless [`GenReport::late`] says otherwise.
    pub start_ns: u64,
    /// With a rate: the rounds that wrote frames more than [`LATE`] after
    /// they were due (the generator was descheduled or its ring was full),
    /// as `[first frame of the round, nanoseconds late]`; the first
    /// [`LATE_KEPT`].
    pub late: Vec<[u64; 2]>,
    /// More late rounds came than [`LATE_KEPT`]: past the last one kept,
    /// the sending times are unknown.
    pub late_truncated: bool,
}

/// How late a frame may be written before [`GenReport::late`] records it.
pub const LATE: Duration = Duration::from_micros(20);
/// Late rounds kept at most (16 bytes each): at least one a frame for any
/// stream of up to this many frames, whose sending times are then always
/// known, however loaded the machine.
pub const LATE_KEPT: usize = 1 << 16;

/// Sends `spec` on `ports` (the queues of one interface): frame `seq` is
/// template `seq % templates`, on port `(seq % templates) % ports`. When the
/// duration ends a run, up to a batch a port may have been numbered and not
/// sent: a sink never sees those numbers.
pub fn generate(ports: &mut [XskPort], spec: &GenSpec) -> Result<GenReport> {
    if spec.templates.is_empty() || ports.is_empty() {
        return Err(Error::Unsupported("no frame templates or no port".into()));
    }
    let (flows, nq) = (spec.templates.len() as u64, ports.len() as u64);
    let start = Instant::now();
    let start_ns = if spec.rate > 0 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(0))
    } else {
        0
    };
    let mut late = Vec::new();
    let mut late_truncated = false;
    // Frames written (and so numbered), and frames placed on a TX ring.
    let (mut next, mut placed): (u64, u64) = (0, 0);
    // Per port: written frames not yet placed (a full TX ring), in order.
    let mut batches: Vec<Vec<XdpFrame>> = (0..ports.len())
        .map(|_| Vec::with_capacity(BATCH))
        .collect();
    let mut last_produce = start;
    let limit = if spec.count == 0 {
        u64::MAX
    } else {
        spec.count
    };
    while placed < limit && start.elapsed() < spec.duration {
        let mut want = (BATCH as u64 * nq).min(limit - next);
        // With a rate: how long ago frame `next` was due.
        let mut behind = 0.0;
        if spec.rate > 0 {
            let elapsed = start.elapsed().as_secs_f64();
            let due = (elapsed * spec.rate as f64) as u64;
            want = want.min(due.saturating_sub(next));
            behind = elapsed - next as f64 / spec.rate as f64;
        }
        let first = next;
        for p in ports.iter_mut() {
            p.reap();
        }
        for _ in 0..want {
            let t = (next % flows) as usize;
            let q = t % ports.len();
            let (port, batch) = (&mut ports[q], &mut batches[q]);
            if batch.len() >= BATCH {
                break;
            }
            let Some(mut f) = port.free.pop() else { break };
            port.mem.write(&mut f, &spec.templates[t]);
            port.mem.edit(&mut f, |b| {
                if let Some(s) = b.get_mut(spec.seq_at..spec.seq_at + 8) {
                    s.copy_from_slice(&next.to_be_bytes());
                }
            });
            batch.push(f);
            next += 1;
        }
        // A round that wrote frames late (not one that found its ring full
        // and wrote none).
        if next > first && behind > LATE.as_secs_f64() {
            if late.len() < LATE_KEPT {
                late.push([first, (behind * 1e9) as u64]);
            } else {
                late_truncated = true;
            }
        }
        let mut moved = false;
        for (port, batch) in ports.iter_mut().zip(&mut batches) {
            if !batch.is_empty() {
                let n = port.port.transmit(batch);
                placed += n as u64;
                port.in_flight += n;
                moved |= n > 0;
            }
            // A port out of free frames waits for completions: a kick sends
            // what its ring holds.
            if !batch.is_empty() || moved || port.free.is_empty() {
                let _ = port.port.kick();
            }
        }
        if moved {
            last_produce = Instant::now();
        } else {
            std::hint::spin_loop();
        }
    }
    // Let the kernel drain the rings.
    let drain_until = Instant::now() + Duration::from_secs(2);
    while ports.iter().any(|p| p.in_flight > 0) && Instant::now() < drain_until {
        for p in ports.iter_mut() {
            let _ = p.port.kick();
            p.reap();
        }
    }
    // What was written and never placed goes back (the run ended).
    for (port, batch) in ports.iter_mut().zip(&mut batches) {
        port.free.append(batch);
    }
    Ok(GenReport {
        sent: placed,
        // First to last frame: the drain above is not sending time.
        seconds: last_produce.duration_since(start).as_secs_f64(),
        start_ns,
        late,
        late_truncated,
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
    let mut got_frames: Vec<XdpFrame> = Vec::with_capacity(BATCH);
    loop {
        let mut got = 0;
        for (i, p) in ports.iter_mut().enumerate() {
            let n = p.port.receive(&mut got_frames, BATCH);
            for f in &got_frames {
                on_frame(i, p.mem.bytes(f));
            }
            if n > 0 {
                // The frames go straight back to the fill ring.
                p.port.fill(&mut got_frames);
                p.free.append(&mut got_frames);
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
        let fds: Vec<i32> = ports.iter().map(|p| p.port.fd()).collect();
        poll(&fds, Duration::from_millis(5), "generator sockets")?;
    }
}
