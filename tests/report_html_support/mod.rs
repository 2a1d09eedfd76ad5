//! Looking at report.html the way a person would: headless Chromium loads
//! the page, lays it out and runs its script; a probe script added to a
//! copy reads back every mark's data attributes and where it was drawn.

#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Appended to a copy of the page: every element with a `data-kind`, its
/// data attributes, its box on the page (for a group with a `line` child,
/// the line's box too), its <title> and, for list rows, its text.
const PROBE: &str = r#"<script>(function(){
function box(el){var r=el.getBoundingClientRect();return {left:r.left,right:r.right,top:r.top,bottom:r.bottom}}
var out={scripts:document.scripts.length,elements:[]};
document.querySelectorAll('[data-kind]').forEach(function(el){
  var d={kind:el.dataset.kind,data:Object.assign({},el.dataset),box:box(el)};
  var line=el.querySelector('line');if(line)d.line=box(line);
  var t=el.querySelector(':scope > title');if(t)d.title=t.textContent;
  if(el.tagName==='TR')d.text=el.textContent;
  out.elements.push(d);
});
var pre=document.createElement('pre');pre.id='sq-probe';pre.textContent=JSON.stringify(out);
document.body.appendChild(pre);
})();</script>"#;

/// Panics (never skips) when Chromium is not installed.
pub fn require_chromium() -> PathBuf {
    stackquake::tools::which("chromium")
        .expect("the HTML report tests need Debian's `chromium` (ci/setup installs it)")
}

/// Runs headless Chromium on `page` with its own profile directory, killed
/// after `limit`; the page must load from the file alone.
pub fn chromium(page: &Path, extra: &[&str], limit: Duration) -> Output {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chromium starts");
    let start = Instant::now();
    // Reading stdout on a thread: a large DOM would fill the pipe and
    // Chromium would never exit.
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut { stdout }, &mut buf).unwrap();
        buf
    });
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let stdout = reader.join().unwrap();
            let mut stderr = Vec::new();
            let _ = std::io::Read::read_to_end(&mut child.stderr.take().unwrap(), &mut stderr);
            return Output {
                status,
                stdout,
                stderr,
            };
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "chromium did not finish with {} in {limit:?}",
                page.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Loads a copy of `page` with the probe added and returns what it read.
pub fn probe(page: &Path) -> Value {
    let html = std::fs::read_to_string(page).unwrap();
    let copy = page.with_file_name("probe.html");
    let with_probe = html.replacen("</body>", &format!("{PROBE}</body>"), 1);
    assert_ne!(with_probe, html, "the page has no </body>");
    std::fs::write(&copy, with_probe).unwrap();
    let out = chromium(&copy, &["--dump-dom"], Duration::from_secs(120));
    assert!(
        out.status.success(),
        "chromium --dump-dom failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dom = String::from_utf8(out.stdout).unwrap();
    let start = dom.find(r#"<pre id="sq-probe">"#).unwrap_or_else(|| {
        panic!(
            "the probe did not run; DOM:\n{}",
            &dom[..dom.len().min(2000)]
        )
    });
    let text = &dom[start + r#"<pre id="sq-probe">"#.len()..];
    let text = &text[..text.find("</pre>").unwrap()];
    // The DOM serializer escapes these three in text; the JSON holds no
    // other entities.
    let json = text
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    serde_json::from_str(&json).unwrap()
}

/// A screenshot of `page` kept under target/ (the path is printed).
pub fn screenshot(page: &Path, name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-html");
    std::fs::create_dir_all(&dir).unwrap();
    let png = dir.join(format!("{name}.png"));
    let _ = std::fs::remove_file(&png);
    let out = chromium(
        page,
        &[
            &format!("--screenshot={}", png.display()),
            "--window-size=1300,1400",
            "--hide-scrollbars",
        ],
        Duration::from_secs(120),
    );
    assert!(
        out.status.success(),
        "chromium --screenshot failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let size = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
    assert!(
        size > 10_000,
        "screenshot {} is {size} bytes",
        png.display()
    );
    println!("screenshot: {}", png.display());
    png
}

/// The probed elements of one kind.
pub fn of_kind<'v>(probe: &'v Value, kind: &str) -> Vec<&'v Value> {
    probe["elements"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .collect()
}

/// A data attribute holding nanoseconds (`startNs`, `endNs`, `tNs`, …).
pub fn ns(e: &Value, key: &str) -> u64 {
    e["data"][key]
        .as_str()
        .unwrap_or_else(|| panic!("no data-{key} on {e}"))
        .parse()
        .unwrap()
}

/// Where the page puts run time `t_ns`: read from the plot area's box and
/// its data-start-ns/data-end-ns.
pub struct Axis {
    left: f64,
    width: f64,
    start_ns: u64,
    end_ns: u64,
}

impl Axis {
    pub fn of(probe: &Value) -> Axis {
        let areas = of_kind(probe, "plot-area");
        assert_eq!(areas.len(), 1, "one plot area per scenario");
        let a = areas[0];
        let left = a["box"]["left"].as_f64().unwrap();
        Axis {
            left,
            width: a["box"]["right"].as_f64().unwrap() - left,
            start_ns: ns(a, "startNs"),
            end_ns: ns(a, "endNs"),
        }
    }

    pub fn x(&self, t_ns: u64) -> f64 {
        let t = t_ns.clamp(self.start_ns, self.end_ns) - self.start_ns;
        self.left + self.width * t as f64 / (self.end_ns - self.start_ns) as f64
    }
}

pub fn left(e: &Value) -> f64 {
    e["box"]["left"].as_f64().unwrap()
}

pub fn right(e: &Value) -> f64 {
    e["box"]["right"].as_f64().unwrap()
}

pub fn center_x(e: &Value) -> f64 {
    (left(e) + right(e)) / 2.0
}

pub fn center_y(e: &Value) -> f64 {
    (e["box"]["top"].as_f64().unwrap() + e["box"]["bottom"].as_f64().unwrap()) / 2.0
}
