//! The chart's Grafana dashboard and PrometheusRule query only what hubs and the operator
//! export: every PromQL expression (panel targets, template variables, alert rules) is parsed
//! with `promql-parser`, and each series selector — metric name, label matchers, and the
//! `by (...)` / `on (...)` labels around it — is checked against the `/metrics` of real running
//! hubs (a link-mode cluster node and a webhook-mode node, so every upstream's metrics are there)
//! and of the operator's metrics registry.
//!
//! Labels that Prometheus adds when it scrapes (`namespace`, `pod`, `job`, `instance`, the
//! PodMonitor's `hub`) are not in `/metrics` and are not checked. An `=` matcher must match a
//! series that exists with that value (the hub creates every labelled series it is queried by
//! at 0, so a rule sees the first event); other matchers need the label to exist.
//!
//! Needs `helm` on PATH and the hub binary (`scripts/operator-test` has both); otherwise SKIP.
//! Also checks that the HorizontalPodAutoscaler's metric is one a hub exports.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use promql_parser::label::MatchOp;
use promql_parser::parser::{self, Expr, LabelModifier, VectorSelector};
use serde_json::Value;

/// Labels the scrape adds (Kubernetes service discovery, the chart's PodMonitor relabeling).
const TARGET_LABELS: [&str; 7] = ["namespace", "pod", "job", "instance", "hub", "service", "container"];

/// One sample line of the text exposition: name and labels.
type Series = (String, BTreeMap<String, String>);

fn parse_exposition(text: &str) -> Vec<Series> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (name, rest) = match line.find(['{', ' ']) {
            Some(i) => line.split_at(i),
            None => panic!("unparseable exposition line {line:?}"),
        };
        let mut labels = BTreeMap::new();
        if let Some(body) = rest.strip_prefix('{') {
            let mut chars = body.chars().peekable();
            loop {
                let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
                let key = key.trim_start_matches(',').trim().to_string();
                if key.is_empty() || key.starts_with('}') {
                    break;
                }
                assert_eq!(chars.next(), Some('"'), "label {key} of {line:?}");
                let mut value = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => value.push(chars.next().unwrap_or('\\')),
                        '"' => break,
                        c => value.push(c),
                    }
                }
                labels.insert(key, value);
                if chars.peek() == Some(&'}') {
                    break;
                }
            }
        }
        out.push((name.to_string(), labels));
    }
    out
}

/// Every series selector of `expr`, each with the grouping labels that apply to it.
fn selectors(expr: &Expr, grouping: &[String], out: &mut Vec<(VectorSelector, Vec<String>)>) {
    let labels_of = |m: &Option<LabelModifier>| -> Vec<String> {
        match m {
            Some(LabelModifier::Include(l)) | Some(LabelModifier::Exclude(l)) => l.labels.clone(),
            None => Vec::new(),
        }
    };
    match expr {
        Expr::Aggregate(a) => {
            let mut g = grouping.to_vec();
            g.extend(labels_of(&a.modifier));
            selectors(&a.expr, &g, out);
            if let Some(p) = &a.param {
                selectors(p, grouping, out);
            }
        }
        Expr::Unary(u) => selectors(&u.expr, grouping, out),
        Expr::Binary(b) => {
            let mut g = grouping.to_vec();
            if let Some(m) = &b.modifier {
                g.extend(labels_of(&m.matching));
                if let Some(l) = m.card.labels() {
                    g.extend(l.labels.clone());
                }
            }
            selectors(&b.lhs, &g, out);
            selectors(&b.rhs, &g, out);
        }
        Expr::Paren(p) => selectors(&p.expr, grouping, out),
        Expr::Subquery(s) => selectors(&s.expr, grouping, out),
        Expr::VectorSelector(vs) => out.push((vs.clone(), grouping.to_vec())),
        Expr::MatrixSelector(ms) => out.push((ms.vs.clone(), grouping.to_vec())),
        Expr::Call(c) => c.args.args.iter().for_each(|a| selectors(a, grouping, out)),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

/// Grafana's variables become what Prometheus would receive: intervals a duration, the rest a
/// match-all regex (they only ever stand in `=~` matchers here).
fn substitute_variables(expr: &str) -> String {
    let mut out = String::new();
    let mut rest = expr;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, len) = if let Some(braced) = after.strip_prefix('{') {
            let end = braced.find('}').expect("closed ${...}");
            (&braced[..end], end + 2)
        } else {
            let end = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
            (&after[..end], end)
        };
        out.push_str(if name.starts_with("__") && name.contains("interval") { "5m" } else { ".*" });
        rest = &after[len..];
    }
    out.push_str(rest);
    out
}

/// `label_values(selector, label)` of a Grafana template variable: (selector, label).
fn label_values_query(query: &str) -> Option<(String, String)> {
    let inner = query.trim().strip_prefix("label_values(")?.strip_suffix(')')?;
    let (sel, label) = inner.rsplit_once(',')?;
    Some((sel.trim().to_string(), label.trim().to_string()))
}

/// Check one expression; returns its problems (empty: fine).
fn check(origin: &str, expr: &str, exported: &[Series]) -> Vec<String> {
    let promql = substitute_variables(expr);
    let parsed = match parser::parse(&promql) {
        Ok(e) => e,
        Err(e) => return vec![format!("{origin}: {promql:?} does not parse: {e}")],
    };
    let mut found = Vec::new();
    selectors(&parsed, &[], &mut found);
    if found.is_empty() {
        return vec![format!("{origin}: {promql:?} selects no series")];
    }
    let mut problems = Vec::new();
    for (vs, grouping) in found {
        let Some(name) = vs.name.clone() else {
            problems.push(format!("{origin}: a selector without a metric name in {promql:?}"));
            continue;
        };
        let series: Vec<&BTreeMap<String, String>> =
            exported.iter().filter(|(n, _)| *n == name).map(|(_, l)| l).collect();
        if series.is_empty() {
            problems.push(format!("{origin}: metric {name} is not exported"));
            continue;
        }
        for m in &vs.matchers.matchers {
            if m.name == "__name__" || TARGET_LABELS.contains(&m.name.as_str()) {
                continue;
            }
            let ok = match &m.op {
                MatchOp::Equal => series.iter().any(|l| l.get(&m.name) == Some(&m.value)),
                _ => series.iter().any(|l| l.contains_key(&m.name)),
            };
            if !ok {
                problems.push(format!(
                    "{origin}: no {name} series has {}{}{:?}",
                    m.name,
                    if matches!(m.op, MatchOp::Equal) { "=" } else { " (any value) for matcher " },
                    m.value
                ));
            }
        }
        for label in grouping.iter().filter(|l| !TARGET_LABELS.contains(&l.as_str())) {
            if !series.iter().any(|l| l.contains_key(label)) {
                problems.push(format!("{origin}: {name} has no label {label:?} to group or match on"));
            }
        }
    }
    problems
}

fn helm_template() -> Option<Vec<Value>> {
    let chart = common::repo_root().join("charts/socketio-hub-operator");
    let out = match Command::new("helm")
        .args(["template", "sioh"])
        .arg(&chart)
        .args([
            "-n",
            "sioh-system",
            "--set",
            "grafanaDashboard.enabled=true",
            "--set",
            "prometheusRule.enabled=true",
        ])
        .args(["--set", "hubPodMonitor.enabled=true"])
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            eprintln!("SKIP: helm is not on PATH ({e}); scripts/operator-test installs it");
            return None;
        }
    };
    assert!(out.status.success(), "helm template failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    Some(
        serde_yaml::Deserializer::from_str(&text)
            .map(|d| serde::Deserialize::deserialize(d).expect("helm renders YAML"))
            .filter(|v: &Value| !v.is_null())
            .collect(),
    )
}

/// Every (origin, expression) of the dashboard and the rules.
fn queries(docs: &[Value]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let dashboards: Vec<&Value> = docs
        .iter()
        .filter(|d| d["kind"] == "ConfigMap" && d["metadata"]["labels"]["grafana_dashboard"] == "1")
        .collect();
    assert_eq!(
        dashboards.len(),
        1,
        "one dashboard ConfigMap with the sidecar label grafana_dashboard: \"1\""
    );
    let data = dashboards[0]["data"].as_object().expect("ConfigMap data");
    assert_eq!(data.len(), 1, "one dashboard file");
    let (file, json) = data.iter().next().unwrap();
    let dash: Value = serde_json::from_str(json.as_str().unwrap()).unwrap_or_else(|e| panic!("{file}: {e}"));
    assert!(dash["uid"].is_string() && dash["title"].is_string(), "{file} is a Grafana dashboard");
    fn panels<'a>(list: &'a Value, acc: &mut Vec<&'a Value>) {
        for p in list.as_array().into_iter().flatten() {
            acc.push(p);
            panels(&p["panels"], acc);
        }
    }
    let mut all = Vec::new();
    panels(&dash["panels"], &mut all);
    for p in &all {
        for t in p["targets"].as_array().into_iter().flatten() {
            let expr =
                t["expr"].as_str().unwrap_or_else(|| panic!("panel {:?}: a target without expr", p["title"]));
            out.push((format!("dashboard panel {:?}", p["title"].as_str().unwrap_or("")), expr.to_string()));
        }
    }
    for v in dash["templating"]["list"].as_array().into_iter().flatten().filter(|v| v["type"] == "query") {
        let q = v["query"]["query"].as_str().or(v["query"].as_str()).expect("variable query");
        let (sel, label) = label_values_query(q).unwrap_or_else(|| panic!("variable {:?}: {q}", v["name"]));
        assert!(TARGET_LABELS.contains(&label.as_str()), "variable {:?} takes values of {label}", v["name"]);
        out.push((format!("dashboard variable {:?}", v["name"].as_str().unwrap_or("")), sel));
    }
    let rules: Vec<&Value> = docs.iter().filter(|d| d["kind"] == "PrometheusRule").collect();
    assert_eq!(rules.len(), 1, "one PrometheusRule");
    for g in rules[0]["spec"]["groups"].as_array().expect("rule groups") {
        for r in g["rules"].as_array().expect("rules") {
            let name = r["alert"].as_str().or(r["record"].as_str()).expect("alert or record name");
            out.push((format!("rule {name}"), r["expr"].as_str().expect("rule expr").to_string()));
        }
    }
    out
}

async fn scrape(admin: &str) -> String {
    let res = reqwest::get(format!("http://{admin}/metrics")).await.expect("scrape /metrics");
    assert_eq!(res.status(), 200);
    res.text().await.unwrap()
}

#[tokio::test]
async fn dashboard_and_alerts_query_only_exported_series() {
    let Some(docs) = helm_template() else { return };
    let Some(bin) = common::hub_binary() else {
        eprintln!("SKIP: target/debug/socketio-hub is not built; run `cargo build -p socketio-hub`");
        return;
    };
    let secret = "monitoring-test-cluster-secret-0123456789";
    let s = |v: &str| v.to_string();
    // A cluster node in link mode (cluster and link metrics) ...
    let link = common::HubProcess::start(
        &bin,
        &[
            s("--listen=127.0.0.1:0"),
            s("--admin-listen=127.0.0.1:0"),
            s("--upstream=link"),
            s("--node-name=mon-link"),
            format!("--gossip-listen={}", common::free_udp("127.0.0.1")),
            s("--mesh-listen=127.0.0.1:0"),
            s("--advertise-host=127.0.0.1"),
            // A seed nobody answers: the node runs its cluster layer alone.
            s("--cluster-seeds=127.0.0.1:1"),
            format!("--cluster-secret={secret}"),
            s("--recovery"),
        ],
    );
    // ... and a serverless node (webhook metrics).
    let webhook = common::HubProcess::start(
        &bin,
        &[
            s("--listen=127.0.0.1:0"),
            s("--admin-listen=127.0.0.1:0"),
            s("--upstream=webhook"),
            s("--webhook-url=http://127.0.0.1:9/hook"),
        ],
    );
    let mut exported = parse_exposition(&scrape(&link.admin).await);
    exported.extend(parse_exposition(&scrape(&webhook.admin).await));
    exported.extend(parse_exposition(&socketio_hub_operator::metrics::Metrics::new().render()));
    assert!(exported.len() > 100, "too few series scraped: {}", exported.len());

    let queries = queries(&docs);
    assert!(
        queries.len() >= 30,
        "expected the whole dashboard and rule set, found {} queries",
        queries.len()
    );
    let problems: Vec<String> = queries.iter().flat_map(|(origin, q)| check(origin, q, &exported)).collect();
    assert!(problems.is_empty(), "{} problems:\n{}", problems.len(), problems.join("\n"));
    let names: BTreeSet<&str> = exported.iter().map(|(n, _)| n.as_str()).collect();
    eprintln!(
        "  {} queries checked against {} series of {} metric names",
        queries.len(),
        exported.len(),
        names.len()
    );

    // The autoscaler's metric is a per-pod gauge the hub exports.
    assert!(
        exported
            .iter()
            .any(|(n, l)| n == socketio_hub_operator::render::CONNECTIONS_METRIC
                && l.contains_key("transport")),
        "{} is not exported",
        socketio_hub_operator::render::CONNECTIONS_METRIC
    );
}

#[test]
fn the_checker_catches_what_does_not_exist() {
    let exported = parse_exposition(
        "# HELP x_total a\nx_total{reason=\"a\",kind=\"k\"} 0\ny_bucket{le=\"+Inf\"} 1\nz 3\n",
    );
    assert!(check(
        "t",
        r#"sum by (kind) (rate(x_total{reason="a", pod=~"$pod"}[$__rate_interval]))"#,
        &exported
    )
    .is_empty());
    assert!(
        check("t", "histogram_quantile(0.99, sum by (le) (rate(y_bucket[5m]))) / z", &exported).is_empty()
    );
    let bad = [
        (r#"rate(x_total{reason="b"}[5m])"#, "reason=\"b\""),
        ("rate(missing_total[5m])", "missing_total is not exported"),
        ("sum by (nope) (x_total)", "no label \"nope\""),
        (r#"x_total{other=~".+"}"#, "other"),
        ("sum(", "does not parse"),
        ("1 + 1", "selects no series"),
    ];
    for (q, want) in bad {
        let p = check("t", q, &exported);
        assert!(p.iter().any(|m| m.contains(want)), "{q}: {p:?} should mention {want}");
    }
}
