//! The cluster the live suite runs against: an existing disposable one (`E2E_KUBECONFIG`), or a
//! control plane of our own: Debian's etcd and a real `kube-apiserver` (`KUBE_APISERVER`) on
//! free 127.0.0.1 ports, with a self-made CA, serving certificate, an admin client certificate
//! in `system:masters`, a second client certificate outside it (the RBAC tests), and a
//! service-account key. RBAC, admission webhooks and ValidatingAdmissionPolicy are on; there is
//! no kubelet and no controller manager. The processes it starts are stopped by PID when it is
//! dropped (also while unwinding from a failed test), and die with the test process
//! (`PR_SET_PDEATHSIG`) if that is killed.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The non-admin user of the RBAC tests (client certificate CN; its group is `e2e-devs`).
pub const DEV_USER: &str = "e2e-dev";

pub struct Cluster {
    /// Scratch directory: kubeconfigs, certificates, logs.
    pub dir: PathBuf,
    /// Admin kubeconfig (context `stackguard-e2e` when we run the control plane).
    pub admin: PathBuf,
    /// Kubeconfig of [`DEV_USER`] (own control plane only; on another cluster the tests make a
    /// ServiceAccount token instead).
    pub dev: Option<PathBuf>,
    /// The kube-apiserver version, as `/version` says.
    pub version: String,
    /// Seconds from start to `/readyz` answering `ok` (own control plane).
    pub startup: Option<f64>,
    processes: Vec<(String, Child)>,
    /// etcd's data directory (removed at stop).
    etcd_dir: Option<PathBuf>,
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

/// Start a process in its own log file; it gets SIGTERM if this (main) thread dies.
fn spawn(name: &str, program: &Path, args: &[String], log: &Path) -> Child {
    let out = std::fs::File::create(log).expect("log file");
    let err = out.try_clone().expect("log file");
    let mut cmd = Command::new(program);
    cmd.args(args).stdin(Stdio::null()).stdout(out).stderr(err);
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    cmd.spawn()
        .unwrap_or_else(|e| panic!("starting {name} ({}): {e}", program.display()))
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

struct Pki {
    issuer: Issuer<'static, KeyPair>,
    ca_pem: String,
}

impl Pki {
    fn new() -> Pki {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "stackguard-e2e-ca");
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).expect("CA certificate");
        Pki {
            ca_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A certificate signed by the CA: (certificate PEM, key PEM).
    fn issue(&self, cn: &str, org: Option<&str>, server: bool) -> (String, String) {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, cn);
        if let Some(o) = org {
            params.distinguished_name.push(DnType::OrganizationName, o);
        }
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        if server {
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            params.subject_alt_names = vec![
                SanType::DnsName("localhost".try_into().expect("dns name")),
                SanType::DnsName("kubernetes.default.svc".try_into().expect("dns name")),
                SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            ];
        } else {
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        }
        let cert = params.signed_by(&key, &self.issuer).expect("certificate");
        (cert.pem(), key.serialize_pem())
    }
}

fn kubeconfig(server: &str, ca: &Path, user: &str, cert: &Path, key: &Path) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: stackguard-e2e\n  cluster:\n    server: {server}\n    certificate-authority: {}\n\
         users:\n- name: {user}\n  user:\n    client-certificate: {}\n    client-key: {}\n\
         contexts:\n- name: stackguard-e2e\n  context:\n    cluster: stackguard-e2e\n    user: {user}\n\
         current-context: stackguard-e2e\n",
        ca.display(),
        cert.display(),
        key.display()
    )
}

impl Cluster {
    /// An existing cluster: `E2E_KUBECONFIG` (admin rights expected).
    pub fn existing(kubeconfig: PathBuf, dir: PathBuf) -> Cluster {
        std::fs::create_dir_all(&dir).expect("scratch directory");
        Cluster {
            dir,
            admin: kubeconfig,
            dev: None,
            version: String::new(),
            startup: None,
            processes: Vec::new(),
            etcd_dir: None,
        }
    }

    /// Our own control plane from `apiserver` (a kube-apiserver binary) and Debian's etcd.
    pub fn start(apiserver: &Path, dir: PathBuf) -> Cluster {
        let started = Instant::now();
        std::fs::create_dir_all(&dir).expect("scratch directory");
        let pki = Pki::new();
        let file = |name: &str, text: &str| {
            let p = dir.join(name);
            write(&p, text);
            p
        };
        let ca = file("ca.crt", &pki.ca_pem);
        let (c, k) = pki.issue("kube-apiserver", None, true);
        let (serving_crt, serving_key) = (file("apiserver.crt", &c), file("apiserver.key", &k));
        let (c, k) = pki.issue("e2e-admin", Some("system:masters"), false);
        let (admin_crt, admin_key) = (file("admin.crt", &c), file("admin.key", &k));
        let (c, k) = pki.issue(DEV_USER, Some("e2e-devs"), false);
        let (dev_crt, dev_key) = (file("dev.crt", &c), file("dev.key", &k));
        let sa = KeyPair::generate().expect("service-account key");
        let sa_key = file("sa.key", &sa.serialize_pem());
        let sa_pub = file("sa.pub", &sa.public_key_pem());

        // etcd's data on tmpfs when there is one: disposable, and fsync is what makes etcd slow.
        let shm = Path::new("/dev/shm");
        let etcd_dir = if shm.is_dir() {
            shm.join(format!("stackguard-e2e-etcd-{}", std::process::id()))
        } else {
            dir.join("etcd")
        };
        let (client_port, peer_port, api_port) = (free_port(), free_port(), free_port());
        let etcd_url = format!("http://127.0.0.1:{client_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let mut cluster = Cluster {
            admin: dir.join("admin.kubeconfig"),
            dev: Some(dir.join("dev.kubeconfig")),
            dir: dir.clone(),
            version: String::new(),
            startup: None,
            processes: Vec::new(),
            etcd_dir: None,
        };
        let etcd_log = dir.join("etcd.log");
        let etcd = spawn(
            "etcd",
            Path::new("etcd"),
            &[
                "--name=e2e".into(),
                format!("--data-dir={}", etcd_dir.display()),
                format!("--listen-client-urls={etcd_url}"),
                format!("--advertise-client-urls={etcd_url}"),
                format!("--listen-peer-urls={peer_url}"),
                format!("--initial-advertise-peer-urls={peer_url}"),
                format!("--initial-cluster=e2e={peer_url}"),
                "--quota-backend-bytes=4294967296".into(),
            ],
            &etcd_log,
        );
        cluster.processes.push(("etcd".into(), etcd));
        cluster.etcd_dir = Some(etcd_dir);
        let api_log = dir.join("kube-apiserver.log");
        let apiserver = spawn(
            "kube-apiserver",
            apiserver,
            &[
                format!("--etcd-servers={etcd_url}"),
                "--bind-address=127.0.0.1".into(),
                "--advertise-address=127.0.0.1".into(),
                format!("--secure-port={api_port}"),
                format!("--tls-cert-file={}", serving_crt.display()),
                format!("--tls-private-key-file={}", serving_key.display()),
                format!("--client-ca-file={}", ca.display()),
                format!("--service-account-key-file={}", sa_pub.display()),
                format!("--service-account-signing-key-file={}", sa_key.display()),
                "--service-account-issuer=https://kubernetes.default.svc".into(),
                "--service-cluster-ip-range=10.96.0.0/16".into(),
                "--authorization-mode=RBAC".into(),
                "--enable-admission-plugins=NamespaceLifecycle,ServiceAccount,MutatingAdmissionWebhook,ValidatingAdmissionWebhook,ValidatingAdmissionPolicy".into(),
                "--endpoint-reconciler-type=none".into(),
                format!("--cert-dir={}", dir.join("certs").display()),
                "--profiling=false".into(),
            ],
            &api_log,
        );
        cluster.processes.push(("kube-apiserver".into(), apiserver));
        let server = format!("https://127.0.0.1:{api_port}");
        write(
            &cluster.admin,
            &kubeconfig(&server, &ca, "e2e-admin", &admin_crt, &admin_key),
        );
        if let Some(dev) = &cluster.dev {
            write(dev, &kubeconfig(&server, &ca, DEV_USER, &dev_crt, &dev_key));
        }
        cluster.wait_ready(&[&etcd_log, &api_log]);
        cluster.startup = Some(started.elapsed().as_secs_f64());
        cluster
    }

    /// Wait for `/readyz` (60 s at most), failing early with the log of a process that died.
    fn wait_ready(&mut self, logs: &[&Path]) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let access = stackguard::kubeclient::Access {
            kubeconfig: Some(self.admin.clone()),
            context: None,
        };
        let client = rt.block_on(access.connect()).expect("admin client").client;
        loop {
            for (i, (name, child)) in self.processes.iter_mut().enumerate() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("{name} exited ({status}):\n{}", tail(logs[i]));
                }
            }
            let req = http::Request::get("/readyz")
                .body(Vec::new())
                .expect("request");
            if let Ok(text) = rt.block_on(client.request_text(req))
                && text.trim() == "ok"
            {
                let req = http::Request::get("/version")
                    .body(Vec::new())
                    .expect("request");
                let v: serde_json::Value =
                    rt.block_on(client.request(req)).expect("/version answers");
                self.version = v["gitVersion"].as_str().unwrap_or("?").to_string();
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "the API server was not ready after 60 s:\n{}",
                    tail(logs[logs.len() - 1])
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Stop exactly the processes this fixture started (SIGTERM, then SIGKILL after 10 s).
    pub fn stop(&mut self) {
        for (name, child) in self.processes.iter_mut().rev() {
            if let Ok(Some(_)) = child.try_wait() {
                continue;
            }
            let pid = child.id() as libc::pid_t;
            // SAFETY: a signal to the PID of a child we started and have not reaped.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if let Ok(None) = child.try_wait() {
                eprintln!("{name} (pid {pid}) ignored SIGTERM; killing it");
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        self.processes.clear();
        if let Some(d) = self.etcd_dir.take() {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}
