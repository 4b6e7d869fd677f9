//! Connecting to a cluster the way kubectl does (`--kubeconfig`, `--context`, else `KUBECONFIG`,
//! `~/.kube/config` or the in-cluster service account), and the one-line form of API errors
//! that `deploy`, `down` and `audit` print.

use anyhow::{Context, Result};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use std::path::PathBuf;

/// Which cluster to talk to: a kubeconfig file and a context in it (both optional).
#[derive(Debug, Clone, Default)]
pub struct Access {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
}

/// A client and what it was made from.
pub struct Connection {
    pub client: Client,
    /// The kubeconfig context in use (`in-cluster` inside a pod).
    pub context: String,
    /// The context's namespace (`default` when it names none), as kubectl uses it.
    pub namespace: String,
}

impl Access {
    pub async fn connect(&self) -> Result<Connection> {
        let options = KubeConfigOptions {
            context: self.context.clone(),
            ..Default::default()
        };
        let (config, context) = match &self.kubeconfig {
            Some(path) => {
                let kc = Kubeconfig::read_from(path)
                    .with_context(|| format!("{}: cannot read the kubeconfig", path.display()))?;
                let context = chosen_context(&options, &kc);
                let config = Config::from_custom_kubeconfig(kc, &options)
                    .await
                    .with_context(|| format!("{}: unusable kubeconfig", path.display()))?;
                (config, context)
            }
            None if self.context.is_some() => {
                let kc = Kubeconfig::read().context("reading the kubeconfig")?;
                let context = chosen_context(&options, &kc);
                let config = Config::from_kubeconfig(&options)
                    .await
                    .with_context(|| format!("loading kubeconfig context {context}"))?;
                (config, context)
            }
            None => {
                let config = Config::infer().await.context(
                    "no Kubernetes cluster configured (KUBECONFIG, ~/.kube/config or in-cluster); \
                     create one with `kind create cluster`, or pass --kubeconfig",
                )?;
                let context = Kubeconfig::read()
                    .ok()
                    .and_then(|kc| kc.current_context)
                    .unwrap_or_else(|| "in-cluster".to_string());
                (config, context)
            }
        };
        let namespace = config.default_namespace.clone();
        let client = Client::try_from(config).context("creating the Kubernetes client")?;
        Ok(Connection {
            client,
            context,
            namespace,
        })
    }
}

fn chosen_context(options: &KubeConfigOptions, kc: &Kubeconfig) -> String {
    options
        .context
        .clone()
        .or_else(|| kc.current_context.clone())
        .unwrap_or_else(|| "default".to_string())
}

/// An API error as one line: the server's own message, its reason and code.
pub fn api_error(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} ({}, {})", s.message, s.reason, s.code),
        other => other.to_string(),
    }
}

/// The HTTP status of an API error (`None` for transport and client errors).
pub fn status_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}
