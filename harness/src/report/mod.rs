//! What `check` (or `audit`) found, and its three renderings: text (people), JSON (scripts),
//! SARIF (code scanning), written as findings come ([`Writer`]).

pub mod json;
pub mod sarif;
pub mod text;

use crate::engine::PolicyInfo;
use crate::manifest::InputError;
use std::io::Write;

/// One rejected field (or object) with everything a reader needs to find it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// The manifest file, or for `audit` the object's `cluster://<context>/<namespace>/<kind>/<name>`.
    pub file: String,
    /// 1-based line in `file`; 0 for an object read from a cluster.
    pub line: usize,
    pub api_version: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub policy: String,
    /// Field path inside the object (`null` when the policy names none).
    pub path: Option<String>,
    pub message: String,
}

/// The outcome of one `check` run.
#[derive(Debug, Default)]
pub struct Report {
    pub files: usize,
    pub objects: usize,
    /// Objects rejected by at least one policy.
    pub rejected: usize,
    pub findings: Vec<Finding>,
    pub errors: Vec<InputError>,
    /// The policies that took part (SARIF rules).
    pub policies: Vec<PolicyInfo>,
}

/// Where `audit` read its objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterScope {
    /// The kubeconfig context.
    pub context: String,
    /// How many namespaces held audited objects.
    pub namespaces: usize,
}

/// Output format of `check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Sarif,
}

/// The counts of a run: everything the summary says besides the findings themselves.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Totals {
    pub files: usize,
    pub objects: usize,
    /// Objects rejected by at least one policy.
    pub rejected: usize,
    pub findings: usize,
    pub errors: usize,
    /// Set when the objects came from a cluster (`audit`) rather than from files.
    pub cluster: Option<ClusterScope>,
}

impl Totals {
    /// `check`'s exit code: 0 when everything was read and accepted, else 1.
    pub fn exit_code(&self) -> i32 {
        if self.findings == 0 && self.errors == 0 {
            0
        } else {
            1
        }
    }
}

impl Report {
    pub fn totals(&self) -> Totals {
        Totals {
            files: self.files,
            objects: self.objects,
            rejected: self.rejected,
            findings: self.findings.len(),
            errors: self.errors.len(),
            cluster: None,
        }
    }

    pub fn render(&self, format: Format, color: bool) -> String {
        let mut out = Vec::new();
        let written = Writer::new(&mut out, format, color, &self.policies).and_then(|mut w| {
            w.findings(&self.findings)?;
            w.finish(&self.errors, &self.totals())
        });
        match written {
            Ok(_) => String::from_utf8_lossy(&out).into_owned(),
            Err(e) => format!("cannot render the report: {e}\n"),
        }
    }
}

/// Writes a report as it is produced: findings as they come (the text format groups
/// consecutive findings of one file), the errors and the summary at the end. Memory holds only
/// what is being written, so `audit` streams a cluster of any size; `Report::render` feeds it
/// a whole report.
pub struct Writer<'a, W: Write> {
    out: W,
    format: Format,
    color: bool,
    policies: &'a [PolicyInfo],
    /// The file of the last finding written.
    last_file: Option<String>,
    findings: usize,
}

impl<'a, W: Write> Writer<'a, W> {
    pub fn new(
        mut out: W,
        format: Format,
        color: bool,
        policies: &'a [PolicyInfo],
    ) -> std::io::Result<Self> {
        match format {
            Format::Text => {}
            Format::Json => out.write_all(json::begin().as_bytes())?,
            Format::Sarif => out.write_all(sarif::begin(policies).as_bytes())?,
        }
        Ok(Writer {
            out,
            format,
            color,
            policies,
            last_file: None,
            findings: 0,
        })
    }

    pub fn findings(&mut self, findings: &[Finding]) -> std::io::Result<()> {
        let mut chunk = String::new();
        for f in findings {
            match self.format {
                Format::Text => text::finding(&mut chunk, self.last_file.as_deref(), f, self.color),
                Format::Json => json::finding(&mut chunk, self.findings == 0, f),
                Format::Sarif => sarif::finding(&mut chunk, self.findings == 0, f, self.policies),
            }
            if self.last_file.as_deref() != Some(f.file.as_str()) {
                self.last_file = Some(f.file.clone());
            }
            self.findings += 1;
        }
        self.out.write_all(chunk.as_bytes())
    }

    /// Write the errors and the summary; returns the output.
    pub fn finish(mut self, errors: &[InputError], totals: &Totals) -> std::io::Result<W> {
        let mut end = String::new();
        match self.format {
            Format::Text => text::finish(&mut end, self.findings > 0, errors, totals, self.color),
            Format::Json => json::finish(&mut end, self.findings > 0, errors, totals),
            Format::Sarif => sarif::finish(&mut end, self.findings == 0, errors, self.policies),
        }
        self.out.write_all(end.as_bytes())?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// `text` with every line after the first indented by `n` spaces (a pretty-printed value
/// nested in a pretty-printed document).
fn indent_rest(text: &str, n: usize) -> String {
    let pad = " ".repeat(n);
    text.replace('\n', &format!("\n{pad}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(file: &str, line: usize, name: &str) -> Finding {
        Finding {
            file: file.into(),
            line,
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            namespace: "n".into(),
            name: name.into(),
            policy: "p".into(),
            path: Some("data.x".into()),
            message: "bad".into(),
        }
    }

    #[test]
    fn streamed_output_equals_the_whole_report_in_every_format() {
        let report = Report {
            files: 2,
            objects: 3,
            rejected: 2,
            findings: vec![
                finding("a.yaml", 3, "x"),
                finding("a.yaml", 9, "y"),
                finding("b.yaml", 1, "z"),
            ],
            errors: vec![InputError {
                file: "c.yaml".into(),
                line: Some(2),
                message: "invalid YAML".into(),
            }],
            ..Default::default()
        };
        for format in [Format::Text, Format::Json, Format::Sarif] {
            let whole = report.render(format, false);
            let mut out = Vec::new();
            let mut w = Writer::new(&mut out, format, false, &report.policies).unwrap();
            for f in &report.findings {
                w.findings(std::slice::from_ref(f)).unwrap();
            }
            w.finish(&report.errors, &report.totals()).unwrap();
            assert_eq!(String::from_utf8(out).unwrap(), whole, "{format:?}");
            if format != Format::Text {
                let v: serde_json::Value = serde_json::from_str(&whole).expect("valid JSON");
                assert!(v.is_object());
            }
        }
        let json: serde_json::Value =
            serde_json::from_str(&report.render(Format::Json, false)).unwrap();
        assert_eq!(json["findings"].as_array().unwrap().len(), 3);
        assert_eq!(json["summary"]["errors"], 1);
        let sarif: serde_json::Value =
            serde_json::from_str(&report.render(Format::Sarif, false)).unwrap();
        assert_eq!(sarif["runs"][0]["results"].as_array().unwrap().len(), 4);
        let text = report.render(Format::Text, false);
        assert_eq!(
            text,
            "a.yaml\n  a.yaml:3  ConfigMap n/x  [p]  data.x: bad\n  a.yaml:9  ConfigMap n/y  [p]  data.x: bad\n\n\
             b.yaml\n  b.yaml:1  ConfigMap n/z  [p]  data.x: bad\n\nerror: c.yaml:2: invalid YAML\n\n\
             ✗ 3 objects in 2 files: 2 rejected (3 findings), 1 error\n"
        );
        // Empty: valid documents too.
        let empty = Report::default();
        for format in [Format::Json, Format::Sarif] {
            let v: serde_json::Value = serde_json::from_str(&empty.render(format, false)).unwrap();
            assert!(v.is_object());
        }
        assert_eq!(
            empty.render(Format::Text, false),
            "✓ 0 objects in 0 files: all accepted\n"
        );
    }

    #[test]
    fn cluster_objects_are_headed_by_their_uri_without_lines() {
        let f = finding("cluster://ctx/n/ConfigMap/x", 0, "x");
        let totals = Totals {
            files: 1,
            objects: 1,
            rejected: 1,
            findings: 1,
            errors: 0,
            cluster: Some(ClusterScope {
                context: "ctx".into(),
                namespaces: 1,
            }),
        };
        let render = |format| {
            let mut w = Writer::new(Vec::new(), format, false, &[]).unwrap();
            w.findings(std::slice::from_ref(&f)).unwrap();
            String::from_utf8(w.finish(&[], &totals).unwrap()).unwrap()
        };
        assert_eq!(
            render(Format::Text),
            "cluster://ctx/n/ConfigMap/x\n  ConfigMap n/x  [p]  data.x: bad\n\n✗ 1 object in 1 namespace of ctx: 1 rejected (1 finding)\n"
        );
        let sarif: serde_json::Value = serde_json::from_str(&render(Format::Sarif)).unwrap();
        let loc = &sarif["runs"][0]["results"][0]["locations"][0]["physicalLocation"];
        assert_eq!(
            loc["artifactLocation"]["uri"],
            "cluster://ctx/n/ConfigMap/x"
        );
        assert!(loc.get("region").is_none());
        let json: serde_json::Value = serde_json::from_str(&render(Format::Json)).unwrap();
        assert_eq!(json["summary"]["context"], "ctx");
        assert_eq!(json["summary"]["namespaces"], 1);
    }
}
