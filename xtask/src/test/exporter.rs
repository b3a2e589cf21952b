//! The metrics endpoint, scraped for real: `replay --metrics-addr` on the
//! host, and `run --metrics-addr` in a guest scraped by Prometheus.

use std::{
    cell::RefCell,
    path::Path,
    process::{Command, Stdio},
    thread::sleep,
    time::{Duration, Instant},
};

use anyhow::{anyhow, bail, ensure, Context as _, Result};
use sync_trace::record::DetachedRecord;
use sync_trace_common::{Method, Target};

use super::{
    module,
    output::Output,
    prometheus::{check_endpoint, ensure_prometheus, free_port, get, Prometheus},
    scenarios,
};
use crate::{
    guest_binary::workspace_root,
    vm::{run_vm_with, KernelId},
};

/// `sync-trace replay FIXTURE --metrics-addr` on the host: the exposition
/// passes promtool and carries the recording's counts.
pub fn replay_endpoint(bin: &Path) -> Result<()> {
    let prom = ensure_prometheus()?;
    let port = free_port()?;
    let fixture = workspace_root().join("sync-trace/tests/fixtures/6.1-hotadd-32T.ndjson");
    let mut child = Command::new(bin)
        .arg("replay")
        .arg(&fixture)
        .arg("--metrics-addr")
        .arg(format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot start sync-trace replay")?;
    let base = format!("http://127.0.0.1:{port}");
    let t = Instant::now();
    let result = (|| {
        while get(&format!("{base}/"), None).is_err() {
            ensure!(
                t.elapsed() < Duration::from_secs(20),
                "replay never served {base}"
            );
            sleep(Duration::from_millis(100));
        }
        check_endpoint(&prom, &base)?;
        let (_, _, body) = get(&format!("{base}/metrics"), None)?;
        for line in [
            "sync_trace_populations_total{level=\"p4d\",region=\"vmemmap\",source=\"helper\"} 1",
            "sync_trace_populations_total{level=\"p4d\",region=\"direct_map\",source=\"effect\"} 1",
            "sync_trace_syncs_total{function=\"arch_sync_kernel_mappings\",caller=\"populate_helper\"} 1",
            "sync_trace_unsynced_populations_total{region=\"vmemmap\"} 0",
            "sync_trace_populate_to_sync_seconds_count 2",
        ] {
            ensure!(body.lines().any(|l| l == line), "replayed metrics lack `{line}`");
        }
        Ok(())
    })();
    let _ = child.kill();
    let _ = child.wait();
    result
}

/// Where the guest's run is, as the host queries it.
#[derive(Default)]
struct Progress {
    errors: Vec<String>,
    seen: Vec<&'static str>,
}

/// The stand-in's probe (scripts/prometheus.sh, step stand-in).
const STAND_IN_UP: &str =
    "sync_trace_probe_attached{target=\"arch_sync_kernel_mappings\",method=\"kprobe\"}";
const DETACHED_ALERTS: &str = "ALERTS{alertname=\"SyncTraceProbeDetached\"}";

/// The host's part of each `checkpoint` of scripts/prometheus.sh; the guest waits until it
/// returns, so the waits are bounds on a slow guest, not sleeps.
fn at_checkpoint(p: &Prometheus, prom_bin: &Path, base: &str, name: &str) -> Result<()> {
    let long = Duration::from_secs(30);
    match name {
        "baseline" => {
            check_endpoint(prom_bin, base)?;
            // Present at 0 before any event, so rate() and absent() work.
            p.wait_for("sum(sync_trace_populations_total)", long, |v| v == 0.0)?;
            p.wait_for("sum(sync_trace_unsynced_populations_total)", long, |v| {
                v == 0.0
            })?;
        }
        "hotadd" => {
            p.wait_for("sum(sync_trace_populations_total)", long, |v| v >= 2.0)?;
            p.wait_for("sum(sync_trace_syncs_total)", long, |v| v >= 3.0)?;
            p.wait_for("sum(increase(sync_trace_syncs_total[1m]))", long, |v| {
                v > 0.0
            })?;
            let u = p.query("sum(sync_trace_unsynced_populations_total)")?;
            ensure!(
                u == Some(0.0),
                "unsynced populations after a clean hot-add: {u:?}"
            );
        }
        "never" => {
            p.wait_for("sum(sync_trace_unsynced_populations_total)", long, |v| {
                v >= 1.0
            })?;
            p.wait_for(
                "count(ALERTS{alertname=\"SyncTraceUnsyncedPopulation\",alertstate=\"firing\"})",
                long,
                |v| v >= 1.0,
            )?;
        }
        // The stand-in's run: attached, and no SyncTraceProbeDetached (pending or firing) over
        // more than the alert's `for` (5 s here) of scrapes.
        "attached" => {
            p.wait_for(STAND_IN_UP, long, |v| v == 1.0)?;
            p.wait_for(&format!("count_over_time({STAND_IN_UP}[8s])"), long, |v| {
                v >= 7.0
            })?;
            let a = p.query(DETACHED_ALERTS)?;
            ensure!(
                a.is_none(),
                "SyncTraceProbeDetached is up while the probe is attached: {a:?}"
            );
        }
        "detached" => {
            p.wait_for(STAND_IN_UP, long, |v| v == 0.0)?;
            p.wait_for(
                "ALERTS{alertname=\"SyncTraceProbeDetached\",alertstate=\"firing\",target=\"arch_sync_kernel_mappings\"}",
                long,
                |v| v >= 1.0,
            )?;
        }
        other => bail!("unknown checkpoint {other}"),
    }
    Ok(())
}

/// The guest scenario: a real Prometheus scrapes `run --metrics-addr` in a
/// 6.12 guest during a hot-add at 32 TiB and a never-synced population.
pub fn prometheus_scenario(bin: &Path) -> Result<()> {
    let prom_bin = ensure_prometheus()?;
    let host_port = free_port()?;
    let base = format!("http://127.0.0.1:{host_port}");
    let prom = Prometheus::start(&prom_bin, &format!("127.0.0.1:{host_port}"))?;
    let mut spec = scenarios::spec_for(
        KernelId::V6_12,
        4,
        false,
        &[scenarios::AT_32T],
        "prometheus",
    );
    spec.forward = Some((host_port, 9464));
    let progress = RefCell::new(Progress::default());
    let out = run_vm_with(&spec, bin, |line| {
        let Some(name) = line.strip_prefix(crate::initramfs::CHECKPOINT) else {
            return;
        };
        let name = name.trim();
        let mut p = progress.borrow_mut();
        match at_checkpoint(&prom, &prom_bin, &base, name) {
            Ok(()) => p.seen.push(match name {
                "baseline" => "baseline",
                "hotadd" => "hotadd",
                "never" => "never",
                "attached" => "attached",
                _ => "detached",
            }),
            Err(e) => p.errors.push(format!("at {name}: {e:#}")),
        }
    })?;
    let p = progress.into_inner();
    if !p.errors.is_empty() {
        bail!(
            "{}; console log {}",
            p.errors.join("; "),
            out.console_log.display()
        );
    }
    ensure!(
        p.seen == ["baseline", "hotadd", "never", "attached", "detached"],
        "checkpoints reached: {:?}",
        p.seen
    );
    let o = Output::parse(&out.output);
    o.expect_exit("run", 0).map_err(|e| anyhow!("{e:#}"))?;
    module::never_unsynced_in(&o, "run")?;
    check_stand_in(&o)
}

/// The stand-in's run: its sync traced while attached, then after `rmmod` one `detached`
/// record and one line on stderr, and the run went on to exit 0.
fn check_stand_in(o: &Output) -> Result<()> {
    let step = "stand-in";
    o.expect_exit(step, 0)?;
    ensure!(o.value(step, "rmmod")? == "0", "{step}: rmmod failed");
    let probe_syncs = o
        .syncs(step)?
        .iter()
        .filter(|s| s.method == Method::Kprobe && s.function == Target::ArchSyncKernelMappings)
        .count();
    ensure!(
        probe_syncs >= 1,
        "{step}: the sync through st_sync was not traced"
    );
    ensure!(
        !o.paired(step)?.is_empty(),
        "{step}: the population through st_sync did not pair"
    );
    let d = o.events::<DetachedRecord>(step)?;
    ensure!(
        d.len() == 1
            && d[0].target == Target::ArchSyncKernelMappings
            && d[0].symbol == "st_sync"
            && d[0].method == Method::Kprobe
            && d[0].reason == "gone",
        "{step}: expected one `detached` record of st_sync (gone), got {d:?}"
    );
    let said: Vec<&String> = o
        .lines_of(step)?
        .iter()
        .filter(|l| l.starts_with("stderr: ") && l.contains("probe detached"))
        .collect();
    ensure!(
        said.len() == 1 && said[0].contains("st_sync") && said[0].contains("unloaded"),
        "{step}: expected one stderr line about st_sync going away, got {said:?}"
    );
    let kernel: Vec<&String> = o
        .lines_of(step)?
        .iter()
        .filter(|l| l.starts_with("kprobes: "))
        .collect();
    println!("prometheus: after rmmod the kernel lists {kernel:?}");
    Ok(())
}
