//! The ring buffers `run` waits on: the kernel programs' records, and the
//! kernel sweep's changes when the sweep runs in the kernel.

use std::time::Duration;

use anyhow::{anyhow, Context as _};
use aya::{
    maps::{MapData, PerCpuArray, RingBuf},
    Ebpf,
};
use sync_trace_common::raw;
use tokio::io::unix::AsyncFd;

use super::engine::Engine;
use crate::kernel::{lost::LostCounters, sweep::KernelSweep};

/// The kernel's ring buffer (calls and diagnostics), registered with the
/// runtime.
pub(super) struct Rings {
    pub(super) events: AsyncFd<RingBuf<MapData>>,
    /// The kernel sweep's changes, when it runs.
    pub(super) sweep: Option<AsyncFd<RingBuf<MapData>>>,
}

/// Waits until the kernel sweep's ring has a change; never, without one.
pub(super) async fn sweep_ready(
    ring: &mut Option<AsyncFd<RingBuf<MapData>>>,
) -> std::io::Result<tokio::io::unix::AsyncFdReadyMutGuard<'_, RingBuf<MapData>>> {
    match ring {
        Some(r) => r.readable_mut().await,
        None => std::future::pending().await,
    }
}

/// Opens the session and takes the baseline scan before any probe attaches.
/// Takes the ring buffer and the loss counters out of the loaded object.
pub(super) fn open_rings(ebpf: &mut Ebpf, since_ns: u64) -> anyhow::Result<(Rings, LostCounters)> {
    let ring = RingBuf::try_from(
        ebpf.take_map(raw::MAP_EVENTS)
            .context("EVENTS map missing")?,
    )?;
    // SAFETY: the ring buffer owns its map fd, which stays open and
    // unchanged until the AsyncFd and its contents are dropped.
    let events = unsafe { AsyncFd::register(ring) }
        .map_err(|e| anyhow!("cannot poll the EVENTS ring buffer: {e}"))?;
    let lost = LostCounters::new(
        PerCpuArray::try_from(ebpf.take_map(raw::MAP_LOST).context("LOST map missing")?)?,
        since_ns,
    );
    Ok((
        Rings {
            events,
            sweep: None,
        },
        lost,
    ))
}

/// Starts the sweep in the kernel and waits on its ring; when it cannot run,
/// says why and leaves the sweep to the loop's timer.
pub(super) fn use_sweep(
    engine: &mut Engine<'_>,
    rings: &mut Rings,
    armed: anyhow::Result<KernelSweep>,
    period: Duration,
) {
    let armed = armed.and_then(|mut k| {
        let ring = k.take_ring().context("the sweep ring was already taken")?;
        // SAFETY: the ring buffer owns its map fd, which stays open and
        // unchanged until the AsyncFd and its contents are dropped.
        let fd = unsafe { AsyncFd::register(ring) }
            .map_err(|e| anyhow!("cannot poll the sweep ring buffer: {e}"))?;
        Ok((k, fd))
    });
    match armed {
        Ok((k, fd)) => {
            log::info!("sweeping in the kernel every {period:?}");
            engine.sweep = Some(k);
            rings.sweep = Some(fd);
        }
        Err(e) => log::info!(
            "sweeping from userspace every {period:?}: {}",
            crate::cmd::one_line(&e)
        ),
    }
}
