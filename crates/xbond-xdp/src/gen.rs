//! An AF_XDP traffic generator and sink, for the benchmark and `xbond
//! pktgen`: one socket with its own UMEM per interface (queue 0), frames
//! written from per-flow templates with a sequence number patched in, TX in
//! batches with one kick per batch; the sink attaches the xbond XDP program to
//! redirect every frame to its socket and counts what a caller-supplied
//! parser recognises.

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
        let (umem, mut free) = create_umem(iface, FRAMES, 0)?;
        // The program goes on before the socket is bound, as in the worker
        // (veth sets up its XDP receive path when the program is attached).
        let prog = if receive {
            let p = XdpProgram::attach(iface, ifindex)?;
            p.configure(true, false, false)?;
            Some(p)
        } else {
            None
        };
        let mut port = XdpPort::bind(&umem, 0, iface, 0, BindMode::Copy, false)?;
        if let Some(p) = &prog {
            p.register_socket(0, port.fd())?;
            // Half the frames wait in the fill ring for received data.
            let mut fill = free.split_off(free.len() - (RING_SIZE as usize).min(free.len() / 2));
            port.fill(&mut fill);
            free.append(&mut fill);
        }
        Ok(XskPort {
            mem: UmemFrames::new(umem),
            free,
            port,
            _prog: prog,
            in_flight: 0,
        })
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
    let mut batch: Vec<XdpFrame> = Vec::with_capacity(BATCH);
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
        let k = want.min(port.free.len());
        if k == 0 {
            let _ = port.port.kick();
            continue;
        }
        for _ in 0..k {
            let Some(mut f) = port.free.pop() else { break };
            let t = &spec.templates
                [((seq + batch.len() as u64) % spec.templates.len() as u64) as usize];
            port.mem.write(&mut f, t);
            let n = seq + batch.len() as u64;
            port.mem.edit(&mut f, |b| {
                if let Some(s) = b.get_mut(spec.seq_at..spec.seq_at + 8) {
                    s.copy_from_slice(&n.to_be_bytes());
                }
            });
            batch.push(f);
        }
        let placed = port.port.transmit(&mut batch);
        seq += placed as u64;
        port.free.append(&mut batch);
        port.in_flight += placed;
        last_produce = Instant::now();
        let _ = port.port.kick();
    }
    // Let the kernel drain the ring.
    let drain_until = Instant::now() + Duration::from_secs(2);
    while port.in_flight > 0 && Instant::now() < drain_until {
        let _ = port.port.kick();
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
