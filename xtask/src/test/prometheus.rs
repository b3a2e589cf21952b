//! A real Prometheus (Debian's `prometheus` package, unpacked into the
//! cache, started on loopback) scraping sync-trace in a guest through a
//! forwarded port, with the project's alert rules loaded.

use std::{
    fs,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread::sleep,
    time::{Duration, Instant},
};

use anyhow::{bail, ensure, Context as _, Result};
use serde_json::Value;

use crate::{apt, guest_binary::workspace_root, kernels::cache_dir};

/// Unpacks Debian's `prometheus` package (server and promtool) into the
/// cache; returns the folder holding `prometheus` and `promtool`.
pub fn ensure_prometheus() -> Result<PathBuf> {
    let root = cache_dir().join("prometheus");
    let bin = root.join("usr/bin");
    if bin.join("prometheus").is_file() && bin.join("promtool").is_file() {
        return Ok(bin);
    }
    let want = ["prometheus".to_string()];
    let debs_dir = cache_dir().join("debs");
    // The host's package lists may predate the package: update once and retry.
    let debs = apt::Apt::host().download(&want, &debs_dir).or_else(|_| {
        crate::deps::apt_update_once()?;
        apt::Apt::host().download(&want, &debs_dir)
    })?;
    apt::unpack_deb(&debs[0], &root)?;
    ensure!(
        bin.join("prometheus").is_file(),
        "the prometheus package holds no usr/bin/prometheus"
    );
    Ok(bin)
}

/// A port nothing listens on now.
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub struct Prometheus {
    child: Child,
    port: u16,
    _dir: PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self._dir);
    }
}

impl Prometheus {
    /// Starts Prometheus on loopback scraping `target` every second with
    /// deploy/prometheus/alerts.yml evaluated every second, its `for:`
    /// durations read as seconds instead of minutes (an alert that fires
    /// after 5 minutes of a condition fires here after 5 seconds; promtool's
    /// unit tests, deploy/prometheus/alerts_test.yml, check the minutes).
    pub fn start(bin: &Path, target: &str) -> Result<Self> {
        let port = free_port()?;
        let dir =
            std::env::temp_dir().join(format!("sync-trace-prom-{}-{port}", std::process::id()));
        fs::create_dir_all(&dir)?;
        let rules = dir.join("alerts.yml");
        let original = workspace_root().join("deploy/prometheus/alerts.yml");
        let text = fs::read_to_string(&original)
            .with_context(|| format!("cannot read {}", original.display()))?;
        fs::write(&rules, for_in_seconds(&text)?)?;
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {}\n\
             scrape_configs:\n  - job_name: sync-trace\n    static_configs:\n      - targets: ['{target}']\n",
            rules.display()
        );
        fs::write(dir.join("prometheus.yml"), config)?;
        let log = fs::File::create(dir.join("prometheus.log"))?;
        let child = Command::new(bin.join("prometheus"))
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("cannot start prometheus")?;
        let p = Self {
            child,
            port,
            _dir: dir,
        };
        let t = Instant::now();
        while ureq::get(&p.url("/-/ready")).call().is_err() {
            ensure!(
                t.elapsed() < Duration::from_secs(30),
                "prometheus did not become ready in 30 s"
            );
            sleep(Duration::from_millis(200));
        }
        Ok(p)
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// An instant query; the value of its first series, if any.
    pub fn query(&self, q: &str) -> Result<Option<f64>> {
        let body = ureq::get(&self.url("/api/v1/query"))
            .query("query", q)
            .call()
            .with_context(|| format!("prometheus query {q}"))?
            .into_string()?;
        let v: Value =
            serde_json::from_str(&body).with_context(|| format!("prometheus answer to {q}"))?;
        ensure!(v["status"] == "success", "prometheus query {q}: {v}");
        Ok(v["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|s| s.parse().ok()))
    }

    /// Polls `q` until `ok(value)` or `within` has passed.
    pub fn wait_for(&self, q: &str, within: Duration, ok: impl Fn(f64) -> bool) -> Result<f64> {
        let t = Instant::now();
        loop {
            let v = self.query(q)?;
            if let Some(v) = v.filter(|&v| ok(v)) {
                return Ok(v);
            }
            if t.elapsed() > within {
                bail!("prometheus: `{q}` is {v:?} after {} s", within.as_secs());
            }
            sleep(Duration::from_millis(250));
        }
    }
}

/// Alert rules with every `for: Nm` made `for: Ns`.
fn for_in_seconds(rules: &str) -> Result<String> {
    let mut n = 0;
    let out: Vec<String> = rules
        .lines()
        .map(|l| {
            let t = l.trim_start();
            match t
                .strip_prefix("for: ")
                .and_then(|d| d.strip_suffix('m'))
                .filter(|d| d.parse::<u32>().is_ok())
            {
                Some(d) => {
                    n += 1;
                    format!("{}for: {d}s", &l[..l.len() - t.len()])
                }
                None => l.to_string(),
            }
        })
        .collect();
    ensure!(n > 0, "alerts.yml has no `for: Nm` to shorten");
    Ok(out.join("\n") + "\n")
}

/// `promtool check metrics` on a scrape.
pub fn promtool_check(bin: &Path, scrape: &str) -> Result<()> {
    let out = crate::cmd::output_any(
        Command::new(bin.join("promtool")).args(["check", "metrics"]),
        Some(scrape.as_bytes()),
    )?;
    ensure!(
        out.status.success(),
        "promtool check metrics rejected the scrape: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// GET with an optional Accept header; (status, content type, body).
pub fn get(url: &str, accept: Option<&str>) -> Result<(u16, String, String)> {
    let mut req = ureq::get(url).timeout(Duration::from_secs(5));
    if let Some(a) = accept {
        req = req.set("Accept", a);
    }
    let resp = match req.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return Err(e).with_context(|| format!("GET {url}")),
    };
    let status = resp.status();
    let ctype = resp.header("Content-Type").unwrap_or("").to_string();
    Ok((status, ctype, resp.into_string()?))
}

/// The exposition checks shared by the guest and the replay tests.
pub fn check_endpoint(bin: &Path, base: &str) -> Result<()> {
    let (status, ctype, body) = get(&format!("{base}/metrics"), None)?;
    ensure!(
        status == 200 && ctype.starts_with("text/plain; version=0.0.4"),
        "/metrics: {status} {ctype}"
    );
    promtool_check(bin, &body)?;
    for m in [
        "sync_trace_populations_total{",
        "sync_trace_syncs_total{",
        "sync_trace_unsynced_populations_total{",
        "sync_trace_pgd_mismatches_total ",
        "sync_trace_populate_to_sync_seconds_bucket{",
        "sync_trace_sync_duration_seconds_bucket{",
        "sync_trace_pgds_verified_total ",
        "sync_trace_pgd_list_length ",
        "sync_trace_events_lost_total ",
        "sync_trace_build_info{",
    ] {
        ensure!(body.contains(m), "/metrics lacks {m}");
    }
    let (status, ctype, body) = get(
        &format!("{base}/metrics"),
        Some("application/openmetrics-text; version=1.0.0"),
    )?;
    ensure!(
        status == 200 && ctype.starts_with("application/openmetrics-text"),
        "OpenMetrics: {status} {ctype}"
    );
    ensure!(
        body.ends_with("# EOF\n"),
        "OpenMetrics scrape does not end with # EOF"
    );
    let (status, _, body) = get(&format!("{base}/"), None)?;
    ensure!(
        status == 200 && body.contains("/metrics"),
        "/ does not link to /metrics: {status}"
    );
    let (status, _, _) = get(&format!("{base}/nothing-here"), None)?;
    ensure!(status == 404, "an unknown path answered {status}, not 404");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn for_durations_become_seconds() {
        let text =
            fs::read_to_string(workspace_root().join("deploy/prometheus/alerts.yml")).unwrap();
        let s = for_in_seconds(&text).unwrap();
        assert!(
            s.contains("        for: 5s\n") && s.contains("        for: 10s\n"),
            "{s}"
        );
        assert!(!s.contains("for: 5m") && !s.contains("for: 10m"));
        assert_eq!(s.lines().count(), text.lines().count());
        assert!(for_in_seconds("groups: []\n").is_err());
    }
}
