//! The metrics endpoint under abuse, on the host (`replay --metrics-addr`
//! serves the same endpoint as `run`): where it listens by default, 2,000
//! half-open connections, an oversized header, 1,000 concurrent scrapes,
//! and a client that reads one byte a second while scrapes go on.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    path::Path,
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread::{self, sleep},
    time::{Duration, Instant},
};

use anyhow::{bail, ensure, Context as _, Result};

use super::prometheus::{free_port, get};
use crate::guest_binary::workspace_root;

/// A scrape slower than this while the endpoint is abused is a failure.
const SCRAPE_BOUND: Duration = Duration::from_secs(1);
/// Growth of the daemon's resident memory the abuse may cause (the
/// half-open connections' buffers and tasks; anything unbounded, such as
/// queued responses for the slow reader, would exceed it).
const RSS_GROWTH_BOUND_KIB: u64 = 64 * 1024;
const HALF_OPEN: usize = 2000;
const CONCURRENT: usize = 1000;
/// Requests the slow reader pipelines: their responses (about 30 KiB each)
/// are far more than the socket buffers hold, so the server must wait for
/// the reader rather than queue them.
const PIPELINED: usize = 2000;
/// How long the slow reader reads, one byte a second, while others scrape.
const SLOW_READ: Duration = Duration::from_secs(10);

/// Counts of the recording that must be served unchanged after the abuse:
/// nothing it did lost or changed an event.
const EXPECTED: [&str; 4] = [
    "sync_trace_populations_total{level=\"p4d\",region=\"vmemmap\",source=\"helper\"} 1",
    "sync_trace_populations_total{level=\"p4d\",region=\"direct_map\",source=\"effect\"} 1",
    "sync_trace_populate_to_sync_seconds_count 2",
    "sync_trace_unsynced_populations_total{region=\"vmemmap\"} 0",
];

struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// `replay FIXTURE --metrics-addr PORT` (a bare port): returns once it
    /// said where it serves.
    fn start(bin: &Path) -> Result<Self> {
        let port = free_port()?;
        let fixture = workspace_root().join("sync-trace/tests/fixtures/6.1-hotadd-32T.ndjson");
        let mut child = Command::new(bin)
            .arg("replay")
            .arg(&fixture)
            .arg("--metrics-addr")
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start sync-trace replay")?;
        let stderr = child.stderr.take().context("no stderr")?;
        let server = Server { child, port };
        let mut line = String::new();
        BufReader::new(stderr).read_line(&mut line)?;
        let want = format!("serving metrics on http://127.0.0.1:{port}/metrics");
        ensure!(
            line.trim() == want,
            "a bare port must serve on loopback: expected `{want}`, got `{}`",
            line.trim()
        );
        Ok(server)
    }

    fn rss_kib(&self) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .context("no VmRSS in /proc/PID/status")
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/metrics", self.port)
    }

    /// One scrape; an error when slower than [`SCRAPE_BOUND`].
    fn scrape(&self) -> Result<(Duration, String)> {
        let t = Instant::now();
        let (status, _, body) = get(&self.url(), None)?;
        let took = t.elapsed();
        ensure!(status == 200, "scrape answered {status}");
        ensure!(
            took <= SCRAPE_BOUND,
            "a scrape took {took:?} (bound {SCRAPE_BOUND:?})"
        );
        Ok((took, body))
    }

    fn connect(&self) -> Result<TcpStream> {
        let s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        Ok(s)
    }
}

/// The listening socket of `pid`'s port is bound to 127.0.0.1 only
/// (/proc/net/tcp: local address 0100007F, state 0A = LISTEN).
fn listens_on_loopback_only(port: u16) -> Result<()> {
    let tcp = std::fs::read_to_string("/proc/net/tcp")?;
    let tcp6 = std::fs::read_to_string("/proc/net/tcp6").unwrap_or_default();
    let suffix = format!(":{port:04X}");
    let listening: Vec<&str> = tcp
        .lines()
        .chain(tcp6.lines())
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() > 3 && f[3] == "0A" && f[1].ends_with(&suffix)).then_some(f[1])
        })
        .collect();
    ensure!(
        listening == [format!("0100007F{suffix}")],
        "port {port} listens on {listening:?}, expected 127.0.0.1 only"
    );
    Ok(())
}

pub fn abuse(bin: &Path) -> Result<()> {
    let server = Server::start(bin)?;
    listens_on_loopback_only(server.port)?;
    let (_, body) = server.scrape()?;
    let rss_before = server.rss_kib()?;

    // Half-open: a request line and a header, never finished.
    let mut half_open = Vec::with_capacity(HALF_OPEN);
    for i in 0..HALF_OPEN {
        let mut s = server
            .connect()
            .with_context(|| format!("half-open connection {i}"))?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")?;
        half_open.push(s);
    }
    server
        .scrape()
        .context("with 2,000 half-open connections")?;

    // An oversized header: refused with 431, not buffered.
    let mut s = server.connect()?;
    let big = format!(
        "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(1 << 20)
    );
    // The server may answer and close before reading it all.
    let _ = s.write_all(big.as_bytes());
    let mut head = [0u8; 12];
    s.read_exact(&mut head)
        .context("no answer to an oversized header")?;
    ensure!(
        &head == b"HTTP/1.1 431",
        "oversized header answered {:?}, expected 431",
        String::from_utf8_lossy(&head)
    );

    // 1,000 concurrent scrapes: all sent, then all read.
    let t = Instant::now();
    let mut conns = Vec::with_capacity(CONCURRENT);
    for _ in 0..CONCURRENT {
        let mut s = server.connect()?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
        conns.push(s);
    }
    for (i, mut s) in conns.into_iter().enumerate() {
        let mut resp = Vec::new();
        s.read_to_end(&mut resp)
            .with_context(|| format!("concurrent scrape {i}"))?;
        ensure!(
            resp.starts_with(b"HTTP/1.1 200"),
            "concurrent scrape {i} answered {:?}",
            String::from_utf8_lossy(&resp[..resp.len().min(40)])
        );
    }
    let all = t.elapsed();

    // The slow reader: many pipelined scrapes, read one byte a second.
    let mut slow = server.connect()?;
    let reqs = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".repeat(PIPELINED);
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        let mut s = slow.try_clone()?;
        thread::spawn(move || -> Result<u64> {
            let mut n = 0;
            let mut b = [0u8; 1];
            while !stop.load(Ordering::Relaxed) {
                s.read_exact(&mut b)?;
                n += 1;
                sleep(Duration::from_secs(1));
            }
            Ok(n)
        })
    };
    // Written from its own thread: the server stops reading requests once
    // their responses back up, so this write blocks, as it should.
    let writer = thread::spawn(move || {
        let _ = slow.write_all(reqs.as_bytes());
    });
    let t = Instant::now();
    let mut slowest = Duration::ZERO;
    let mut scrapes = 0;
    while t.elapsed() < SLOW_READ {
        let (took, _) = server
            .scrape()
            .context("while a client reads one byte a second")?;
        slowest = slowest.max(took);
        scrapes += 1;
        sleep(Duration::from_millis(200));
    }
    let rss_after = server.rss_kib()?;
    stop.store(true, Ordering::Relaxed);
    let read = reader
        .join()
        .map_err(|_| anyhow::anyhow!("reader panicked"))??;
    drop(half_open);
    ensure!(read >= 5, "the slow reader got only {read} bytes");
    let grown = rss_after.saturating_sub(rss_before);
    ensure!(
        grown <= RSS_GROWTH_BOUND_KIB,
        "resident memory grew by {grown} KiB under abuse (bound {RSS_GROWTH_BOUND_KIB} KiB)"
    );
    let (_, after) = server.scrape()?;
    for line in EXPECTED {
        ensure!(body.lines().any(|l| l == line), "metrics lack `{line}`");
        ensure!(
            after.lines().any(|l| l == line),
            "after the abuse, metrics lack `{line}`"
        );
    }
    if after
        .lines()
        .any(|l| l.starts_with("sync_trace_events_lost_total") && !l.ends_with(" 0"))
    {
        bail!("events counted lost after the abuse");
    }
    println!(
        "exporter abuse: {HALF_OPEN} half-open, 431 for a 1 MiB header, {CONCURRENT} concurrent scrapes in {:.2} s, \
         {scrapes} scrapes (slowest {:.3} s) while a client read {read} bytes at one a second, RSS {rss_before} -> {rss_after} KiB",
        all.as_secs_f64(),
        slowest.as_secs_f64()
    );
    drop(server);
    let _ = writer.join();
    Ok(())
}
