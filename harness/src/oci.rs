//! Push and pull policy modules to and from OCI registries, as `kwctl push` / `kwctl pull` do.
//!
//! - The artifact: one layer `application/vnd.wasm.content.layer.v1+wasm` (the annotated module,
//!   byte for byte), a config `application/vnd.wasm.config.v1+json` holding the policy metadata
//!   embedded in the module (kwctl writes `{}` there; Kubewarden reads only the layer, so both
//!   pull alike), and as manifest annotations the metadata's single-line annotations plus
//!   `org.opencontainers.image.source` (exactly kwctl's set).
//! - Credentials come from the Docker config (`$DOCKER_CONFIG/config.json`, else
//!   `~/.docker/config.json`: `auths`, `credHelpers`, `credsStore`), as kwctl reads them.
//! - HTTPS always; for a registry listed under `insecure_sources` of kwctl's `sources.yaml`
//!   (`--sources-path`, default `~/.config/kwctl/sources.yaml`): HTTPS, then HTTPS without
//!   certificate checks, then plain HTTP, as kwctl. `source_authorities` adds trusted CAs.
//!
//! The OCI protocol itself is the `oci-client` crate's (the one Kubewarden's fetcher uses).

use crate::metadata;
use anyhow::{Context, Result, anyhow, bail};
use oci_client::Reference;
use oci_client::client::{
    Certificate, CertificateEncoding, Client, ClientConfig, ClientProtocol, Config, ImageLayer,
};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::{
    OCI_IMAGE_MEDIA_TYPE, OciImageManifest, WASM_CONFIG_MEDIA_TYPE, WASM_LAYER_MEDIA_TYPE,
};
use oci_client::secrets::RegistryAuth;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// The annotation kwctl copies into `org.opencontainers.image.source`.
const POLICY_SOURCE: &str = "io.kubewarden.policy.source";
const OCI_SOURCE: &str = "org.opencontainers.image.source";

/// `registry://HOST/REPO:TAG` (the scheme may be omitted).
pub fn reference(uri: &str) -> Result<Reference> {
    let bare = uri.strip_prefix("registry://").unwrap_or(uri);
    bare.parse::<Reference>().map_err(|e| {
        anyhow!("{uri}: not an OCI reference such as registry://ghcr.io/org/policy:v1 ({e})")
    })
}

/// kwctl's `sources.yaml`: registries reached without TLS checks, and extra CAs.
#[derive(Debug, Default)]
pub struct Sources {
    insecure: BTreeSet<String>,
    authorities: HashMap<String, Vec<Certificate>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawSources {
    insecure_sources: BTreeSet<String>,
    source_authorities: HashMap<String, Vec<RawAuthority>>,
}

#[derive(Deserialize)]
#[serde(tag = "type")]
enum RawAuthority {
    Path { path: PathBuf },
    Data { data: String },
}

impl Sources {
    /// Read `path`, or kwctl's default file when it exists, else no sources.
    pub fn load(path: Option<&Path>) -> Result<Sources> {
        let default = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
            .map(|d| d.join("kwctl").join("sources.yaml"));
        let path = match (path, default) {
            (Some(p), _) => p.to_path_buf(),
            (None, Some(d)) if d.exists() => d,
            _ => return Ok(Sources::default()),
        };
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {origin}"))?;
        let value = crate::yaml::value(&text).with_context(|| format!("{origin}: invalid YAML"))?;
        let raw: RawSources = if value.is_null() {
            RawSources::default()
        } else {
            serde_json::from_value(value)
                .with_context(|| format!("{origin}: invalid sources file"))?
        };
        let mut authorities = HashMap::new();
        for (host, list) in raw.source_authorities {
            let certs = list
                .into_iter()
                .map(|a| match a {
                    RawAuthority::Path { path } => std::fs::read(&path)
                        .with_context(|| format!("{origin}: reading CA {}", path.display())),
                    RawAuthority::Data { data } => Ok(data.into_bytes()),
                })
                .map(|data| {
                    data.map(|data| Certificate {
                        encoding: if data.starts_with(b"-----BEGIN") {
                            CertificateEncoding::Pem
                        } else {
                            CertificateEncoding::Der
                        },
                        data,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            authorities.insert(host, certs);
        }
        Ok(Sources {
            insecure: raw.insecure_sources,
            authorities,
        })
    }

    fn is_insecure(&self, host: &str) -> bool {
        self.insecure.contains(host)
    }

    /// The client configurations to try, in order.
    fn attempts(&self, host: &str) -> Vec<ClientConfig> {
        let https = ClientConfig {
            protocol: ClientProtocol::Https,
            extra_root_certificates: self.authorities.get(host).cloned().unwrap_or_default(),
            ..Default::default()
        };
        if !self.is_insecure(host) {
            return vec![https];
        }
        let unverified = ClientConfig {
            protocol: ClientProtocol::Https,
            accept_invalid_certificates: true,
            ..Default::default()
        };
        let http = ClientConfig {
            protocol: ClientProtocol::Http,
            ..Default::default()
        };
        vec![https, unverified, http]
    }
}

/// Where credentials for `registry` come from, for messages (never the secret itself).
struct Credentials {
    auth: RegistryAuth,
    origin: String,
}

fn credentials(registry: &str) -> Credentials {
    let dir = std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")));
    let origin = dir
        .map(|d| d.join("config.json").display().to_string())
        .unwrap_or_else(|| "the Docker config".to_string());
    let auth = match docker_credential::get_credential(registry) {
        Ok(docker_credential::DockerCredential::UsernamePassword(user, password)) => {
            RegistryAuth::Basic(user, password)
        }
        Ok(docker_credential::DockerCredential::IdentityToken(_)) => {
            eprintln!(
                "warning: {origin}: identity tokens are not supported (as in kwctl); \
                 trying {registry} anonymously"
            );
            RegistryAuth::Anonymous
        }
        Err(_) => RegistryAuth::Anonymous,
    };
    Credentials { auth, origin }
}

/// Run `op` against the registry with each client configuration in turn (see
/// [`Sources::attempts`]); the last error wins, as in kwctl.
async fn with_clients<T, F, Fut>(reference: &Reference, sources: &Sources, op: F) -> Result<T>
where
    F: Fn(Client, RegistryAuth) -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, OciDistributionError>>,
{
    let host = reference.resolve_registry().to_string();
    let creds = credentials(&host);
    let attempts = sources.attempts(&host);
    let insecure = attempts.len() > 1;
    let mut last = None;
    for config in attempts {
        let protocol = match config.protocol {
            ClientProtocol::Http => "http",
            _ => "https",
        };
        match op(Client::new(config), creds.auth.clone()).await {
            Ok(v) => return Ok(v),
            Err(e) => last = Some((protocol, e)),
        }
    }
    let (protocol, e) = last.expect("at least one attempt");
    Err(explain(e, reference, &host, protocol, insecure, &creds))
}

/// One clear message for a registry error (never the credentials themselves).
fn explain(
    e: OciDistributionError,
    reference: &Reference,
    host: &str,
    protocol: &str,
    insecure: bool,
    creds: &Credentials,
) -> anyhow::Error {
    let codes: Vec<&OciErrorCode> = match &e {
        OciDistributionError::RegistryError { envelope, .. } => {
            envelope.errors.iter().map(|err| &err.code).collect()
        }
        _ => Vec::new(),
    };
    let status = match &e {
        OciDistributionError::ServerError { code, .. } => Some(*code),
        OciDistributionError::UnauthorizedError { .. }
        | OciDistributionError::AuthenticationFailure(_) => Some(401),
        _ => None,
    };
    let unauthorized = status.is_some_and(|c| c == 401 || c == 403)
        || codes
            .iter()
            .any(|c| matches!(c, OciErrorCode::Unauthorized | OciErrorCode::Denied));
    let missing = matches!(e, OciDistributionError::ImageManifestNotFoundError(_))
        || status == Some(404)
        || codes.iter().any(|c| {
            matches!(
                c,
                OciErrorCode::ManifestUnknown | OciErrorCode::NameUnknown | OciErrorCode::NotFound
            )
        });
    let target = format!("registry://{reference}");
    if unauthorized {
        return match creds.auth {
            RegistryAuth::Anonymous => anyhow!(
                "{target}: {host} requires authentication and {} has no credentials for it \
                 (log in with `docker login {host}`)",
                creds.origin
            ),
            _ => anyhow!(
                "{target}: {host} rejected the credentials for {host} from {} (authentication failed)",
                creds.origin
            ),
        };
    }
    if missing {
        return anyhow!(
            "{target}: not found: the registry has no tag {} in repository {}",
            reference.tag().unwrap_or("latest"),
            reference.repository()
        );
    }
    if let OciDistributionError::RequestError(err) = &e {
        let hint = if insecure || protocol == "http" {
            String::new()
        } else {
            format!(
                "; if {host} serves plain HTTP, list it under insecure_sources in kwctl's \
                 sources.yaml (--sources-path)"
            )
        };
        return anyhow!(
            "{target}: cannot reach {host} over {protocol}: {}{hint}",
            root_cause(err)
        );
    }
    anyhow!("{target}: {e}")
}

/// The innermost cause of an error, which says what went wrong on the wire.
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = err;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// rustls needs one process-wide crypto provider (ring, as the rest of the CLI uses).
fn crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The manifest annotations kwctl writes for a module's metadata annotations: single-line
/// values (trimmed), and `org.opencontainers.image.source` from `io.kubewarden.policy.source`.
pub fn manifest_annotations(annotations: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = annotations
        .iter()
        .filter(|(_, v)| v.lines().count() <= 1)
        .map(|(k, v)| (k.clone(), v.trim().to_string()))
        .collect();
    if let Some(source) = out.get(POLICY_SOURCE).cloned() {
        out.entry(OCI_SOURCE.to_string()).or_insert(source);
    }
    out
}

/// A pushed module.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Pushed {
    /// `host/repo@sha256:…`, what `cosign sign` takes.
    pub immutable_ref: String,
}

/// Push an annotated module (`force`: also one without metadata, as `kwctl push --force`).
pub fn push(module: &[u8], uri: &str, sources: &Sources, force: bool) -> Result<Pushed> {
    let reference = reference(uri)?;
    let raw =
        metadata::custom_section(module, metadata::SECTION).context("not a WebAssembly module")?;
    let annotations = match raw {
        Some(raw) => {
            let meta: metadata::Metadata =
                serde_json::from_slice(raw).context("the embedded metadata is not valid JSON")?;
            Some(manifest_annotations(&meta.annotations.unwrap_or_default()))
        }
        None if force => {
            eprintln!("warning: pushing a module without metadata");
            None
        }
        None => bail!(
            "cannot push a policy that is not annotated: run `stackguard annotate` first, or pass --force"
        ),
    };
    let config_data = raw.map(<[u8]>::to_vec).unwrap_or_else(|| b"{}".to_vec());
    crypto();
    runtime()?.block_on(async {
        let layers = vec![ImageLayer::new(
            module.to_vec(),
            WASM_LAYER_MEDIA_TYPE.to_string(),
            None,
        )];
        let config = Config::new(config_data, WASM_CONFIG_MEDIA_TYPE.to_string(), None);
        let mut manifest = OciImageManifest::build(&layers, &config, annotations);
        // The OCI image spec says mediaType SHOULD be set (kwctl leaves it out).
        manifest.media_type = Some(OCI_IMAGE_MEDIA_TYPE.to_string());
        with_clients(&reference, sources, |client, auth| {
            let (layers, config, manifest, reference) = (
                layers.clone(),
                config.clone(),
                manifest.clone(),
                reference.clone(),
            );
            async move {
                client
                    .push(&reference, &layers, config, &auth, Some(manifest))
                    .await?;
                client.fetch_manifest_digest(&reference, &auth).await
            }
        })
        .await
        .map(|digest| Pushed {
            immutable_ref: format!(
                "{}/{}@{digest}",
                reference.registry(),
                reference.repository()
            ),
        })
    })
}

/// A pulled module.
pub struct Pulled {
    /// The module, byte for byte as pushed.
    pub module: Vec<u8>,
    /// The manifest digest.
    pub digest: String,
    pub manifest: OciImageManifest,
    /// The config blob (the policy metadata when stackguard pushed it).
    pub config: Vec<u8>,
}

/// Pull a policy module; the layer must be a wasm layer (digests are checked by the client).
pub fn pull(uri: &str, sources: &Sources) -> Result<Pulled> {
    let reference = reference(uri)?;
    crypto();
    runtime()?
        .block_on(with_clients(&reference, sources, |client, auth| {
            let reference = reference.clone();
            async move {
                let image = client
                    .pull(&reference, &auth, vec![WASM_LAYER_MEDIA_TYPE])
                    .await?;
                Ok(image)
            }
        }))
        .and_then(|image| {
            let manifest = image.manifest.ok_or_else(|| {
                anyhow!("registry://{reference}: the registry sent no image manifest")
            })?;
            let module = image
                .layers
                .into_iter()
                .next()
                .ok_or_else(|| anyhow!("registry://{reference}: the artifact has no wasm layer"))?
                .data
                .to_vec();
            Ok(Pulled {
                module,
                digest: image.digest.unwrap_or_default(),
                manifest,
                config: image.config.data.to_vec(),
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotations_as_kwctl() {
        let a = BTreeMap::from([
            (
                POLICY_SOURCE.to_string(),
                "https://github.com/x/y".to_string(),
            ),
            (
                "io.kubewarden.policy.usage".to_string(),
                "# README\n\ntext".to_string(),
            ),
            (
                "io.kubewarden.policy.description".to_string(),
                "ends with newline\n".to_string(),
            ),
        ]);
        let out = manifest_annotations(&a);
        assert_eq!(
            out.get(OCI_SOURCE).map(String::as_str),
            Some("https://github.com/x/y")
        );
        assert!(!out.contains_key("io.kubewarden.policy.usage"));
        assert_eq!(
            out.get("io.kubewarden.policy.description")
                .map(String::as_str),
            Some("ends with newline")
        );
        assert!(reference("registry://127.0.0.1:5000/policies/x:v1").is_ok());
        assert!(reference("registry://ghcr.io/Not A Name:v1").is_err());
    }

    #[test]
    fn only_insecure_registries_get_plain_http() {
        let secure = Sources::default();
        assert_eq!(secure.attempts("r.example").len(), 1);
        assert!(matches!(
            secure.attempts("r.example")[0].protocol,
            ClientProtocol::Https
        ));
        let insecure = Sources {
            insecure: BTreeSet::from(["127.0.0.1:5000".to_string()]),
            ..Default::default()
        };
        let attempts = insecure.attempts("127.0.0.1:5000");
        assert!(matches!(
            attempts.last().unwrap().protocol,
            ClientProtocol::Http
        ));
        assert_eq!(insecure.attempts("127.0.0.1:5001").len(), 1);
    }
}
