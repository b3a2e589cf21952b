//! The Prometheus text format (0.0.4) from prometheus-client's OpenMetrics.

/// prometheus-client writes only OpenMetrics. The Prometheus text format
/// differs in three ways that matter here: a counter's HELP/TYPE name carries
/// the `_total` suffix of its samples, there are no UNIT lines, and there is
/// no `# EOF`. Samples, labels and histograms are written the same way.
pub fn openmetrics_to_prometheus(om: &str) -> String {
    let counters: Vec<&str> = om
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(om.len());
    for line in om.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|p| {
            let rest = line.strip_prefix(p)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(&name)
                .then(|| format!("{p}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}
