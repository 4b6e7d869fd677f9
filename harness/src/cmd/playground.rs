//! `stackguard playground`: serve the browser playground (harness/playground/web, built by
//! `make playground`) on 127.0.0.1 with a tiny std-only HTTP/1.1 server. Static files only, GET
//! and HEAD, nothing outside the page's directory; `.wasm` goes out as `application/wasm` so the
//! browser can compile the module while it downloads.

use anyhow::{Context, Result, anyhow};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Port to listen on, on 127.0.0.1 only (0: any free port; the URL is printed).
    #[arg(long, default_value_t = 8737)]
    pub port: u16,
    /// Directory of the page (default: harness/playground/web of this checkout).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// The page's directory as built in this checkout, else relative to the current directory.
fn default_dir() -> PathBuf {
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("playground/web");
    if built.is_dir() {
        built
    } else {
        PathBuf::from("harness/playground/web")
    }
}

pub fn main(args: Args) -> Result<i32> {
    let dir = args.dir.unwrap_or_else(default_dir);
    if !dir.join("index.html").is_file() {
        return Err(anyhow!(
            "{}: no index.html: pass the page's directory with --dir",
            dir.display()
        ));
    }
    if !dir.join("pkg/stackguard_playground.js").is_file() {
        return Err(anyhow!(
            "{}: the policy engine is not built (pkg/ is missing): run `make playground` first",
            dir.display()
        ));
    }
    let root = dir
        .canonicalize()
        .with_context(|| format!("{}: cannot resolve", dir.display()))?;
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, args.port))
        .with_context(|| format!("cannot listen on 127.0.0.1:{}", args.port))?;
    let addr = listener.local_addr()?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "stackguard playground: http://{addr}/  (serving {}; Ctrl-C stops)",
        dir.display()
    )?;
    out.flush()?;
    drop(out);
    serve(&listener, &root);
    Ok(0)
}

/// Answer connections until the process ends, one thread per connection.
pub fn serve(listener: &TcpListener, root: &Path) {
    for conn in listener.incoming() {
        match conn {
            Ok(stream) => {
                let root = root.to_path_buf();
                std::thread::spawn(move || {
                    if let Err(e) = handle(stream, &root) {
                        eprintln!("playground: {e:#}");
                    }
                });
            }
            Err(e) => eprintln!("playground: accept failed: {e}"),
        }
    }
}

/// Longest request head we read (request line and headers).
const MAX_HEAD: usize = 16 * 1024;

fn handle(stream: TcpStream, root: &Path) -> Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?).take(MAX_HEAD as u64);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    // Drain the headers: nothing in them changes the answer.
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line)?;
        if n == 0 || line == "\r\n" || line == "\n" {
            break;
        }
    }
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let response = respond(root, method, target);
    eprintln!(
        "playground: {method} {} {}",
        target.split('?').next().unwrap_or(""),
        response.status
    );
    response.write(stream, method == "HEAD")
}

struct Response {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
}

impl Response {
    fn error(status: u16) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: format!("{status} {}\n", reason(status)).into_bytes(),
        }
    }

    fn write(self, mut stream: TcpStream, head_only: bool) -> Result<()> {
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len()
        );
        if self.status == 405 {
            head.push_str("Allow: GET, HEAD\r\n");
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes())?;
        if !head_only {
            stream.write_all(&self.body)?;
        }
        stream.flush()?;
        Ok(())
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Internal Server Error",
    }
}

fn respond(root: &Path, method: &str, target: &str) -> Response {
    if method != "GET" && method != "HEAD" {
        return Response::error(405);
    }
    let Some(path) = resolve(root, target) else {
        return Response::error(400);
    };
    match std::fs::read(&path) {
        Ok(body) => Response {
            status: 200,
            content_type: content_type(&path),
            body,
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Response::error(404),
        Err(_) => Response::error(500),
    }
}

/// Map a request target to a file under `root` (already canonical). `None` for anything that
/// is not a plain path inside it: `..`, hidden entries, bad percent-encoding, symlinks out.
fn resolve(root: &Path, target: &str) -> Option<PathBuf> {
    let path = target.split(['?', '#']).next()?;
    let decoded = percent_decode(path)?;
    let rest = decoded.strip_prefix('/')?;
    let mut out = root.to_path_buf();
    for segment in rest.split('/') {
        match segment {
            "" | "." => {}
            s if s.starts_with('.') || s.contains(['\\', '\0']) => return None,
            s => out.push(s),
        }
    }
    if out.is_dir() {
        out.push("index.html");
    }
    match out.canonicalize() {
        Ok(real) if !real.starts_with(root) => None,
        // A missing file answers 404 later.
        _ => Some(out),
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "wasm" => "application/wasm",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "txt" | "md" | "yaml" | "yml" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site() -> (tempdir::Dir, PathBuf) {
        let d = tempdir::Dir::new();
        std::fs::create_dir_all(d.0.join("pkg")).unwrap();
        std::fs::write(d.0.join("index.html"), "<!doctype html>").unwrap();
        std::fs::write(d.0.join("pkg/m.wasm"), b"\0asm\x01\0\0\0").unwrap();
        std::fs::write(d.0.join(".secret"), "x").unwrap();
        let root = d.0.canonicalize().unwrap();
        (d, root)
    }

    /// A scratch directory removed on drop (std only).
    mod tempdir {
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new() -> Dir {
                use std::sync::atomic::{AtomicUsize, Ordering};
                static N: AtomicUsize = AtomicUsize::new(0);
                let p = std::env::temp_dir().join(format!(
                    "stackguard-playground-test-{}-{}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::Relaxed)
                ));
                std::fs::create_dir_all(&p).unwrap();
                Dir(p)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    #[test]
    fn paths_stay_inside_the_root() {
        let (_d, root) = site();
        assert_eq!(resolve(&root, "/").unwrap(), root.join("index.html"));
        assert_eq!(
            resolve(&root, "/pkg/m.wasm?v=1").unwrap(),
            root.join("pkg/m.wasm")
        );
        assert_eq!(
            resolve(&root, "/pkg/").unwrap(),
            root.join("pkg/index.html")
        );
        for bad in [
            "/../etc/passwd",
            "/pkg/%2e%2e/%2e%2e/x",
            "/.secret",
            "relative",
            "/%zz",
            "/a%00b",
        ] {
            assert!(resolve(&root, bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type(Path::new("a/m.wasm")), "application/wasm");
        assert!(content_type(Path::new("app.js")).starts_with("text/javascript"));
        assert!(content_type(Path::new("index.html")).starts_with("text/html"));
        assert!(content_type(Path::new("style.css")).starts_with("text/css"));
    }

    fn get(addr: std::net::SocketAddr, request: &str) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        String::from_utf8_lossy(&out).to_string()
    }

    #[test]
    fn serves_files_over_http() {
        let (_d, root) = site();
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        let r = root.clone();
        std::thread::spawn(move || serve(&listener, &r));

        let wasm = get(addr, "GET /pkg/m.wasm HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(wasm.starts_with("HTTP/1.1 200 OK\r\n"), "{wasm}");
        assert!(
            wasm.contains("Content-Type: application/wasm\r\n"),
            "{wasm}"
        );
        assert!(wasm.contains("Content-Length: 8\r\n"), "{wasm}");
        assert!(wasm.ends_with("\0asm\x01\0\0\0"));

        let index = get(addr, "HEAD / HTTP/1.1\r\n\r\n");
        assert!(index.contains("Content-Type: text/html"), "{index}");
        assert!(index.ends_with("\r\n\r\n"), "HEAD has no body: {index}");

        assert!(get(addr, "GET /nope.js HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
        assert!(get(addr, "GET /../x HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 400"));
        let post = get(addr, "POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
        assert!(post.starts_with("HTTP/1.1 405") && post.contains("Allow: GET, HEAD"));
    }
}
