//! A mutual-TLS front for the Temporal dev server, for the tests that connect a worker the way
//! it connects to Temporal Cloud or a self-hosted cluster with mTLS.
//!
//! `temporal server start-dev` has no TLS options, so the test puts this in front of it. It
//! makes a throw-away CA with rcgen, a server certificate for `localhost` and `127.0.0.1`, a
//! client certificate signed by that CA and one signed by a stranger CA, writes them as PEM
//! files, and then accepts only TLS connections (ALPN `h2`, as gRPC needs) whose client
//! presents a certificate of its CA; the decrypted bytes go to the dev server. It counts the
//! handshakes it accepted and refused, so a test can tell that the worker really came through
//! it and that a worker without the right certificate was turned away.
//!
//! It does not speak gRPC or look at the bytes: it is a TLS terminator, nothing more.

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// A running mTLS front and the files a client needs.
pub struct MtlsFront {
    /// `127.0.0.1:<port>` the front listens on.
    pub address: String,
    /// The CA that signed the server certificate (the client's `server_ca_cert`).
    pub ca_cert: PathBuf,
    /// A client certificate and key the front accepts.
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// A client certificate and key signed by another CA: refused.
    pub stranger_cert: PathBuf,
    pub stranger_key: PathBuf,
    accepted: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl MtlsFront {
    /// TLS handshakes completed with a trusted client certificate so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Handshakes that failed (no certificate, a stranger's, or no TLS at all) so far.
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }
}

impl Drop for MtlsFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A CA: its certificate and the issuer that signs with its key.
struct Ca {
    cert: rcgen::Certificate,
    issuer: Issuer<'static, KeyPair>,
}

fn new_ca(name: &str) -> anyhow::Result<Ca> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&key)?;
    Ok(Ca {
        cert,
        issuer: Issuer::new(params, key),
    })
}

/// A leaf certificate signed by `ca`: (certificate, key).
fn leaf(
    ca: &Ca,
    name: &str,
    purpose: ExtendedKeyUsagePurpose,
) -> anyhow::Result<(rcgen::Certificate, KeyPair)> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(vec!["localhost".to_string()])?;
    params.distinguished_name.push(DnType::CommonName, name);
    params
        .subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse()?));
    params.extended_key_usages = vec![purpose];
    let cert = params.signed_by(&key, &ca.issuer)?;
    Ok((cert, key))
}

/// Generates the certificates into `dir` and starts the front, forwarding to `upstream`.
pub async fn start(upstream: &str, dir: &Path) -> anyhow::Result<MtlsFront> {
    std::fs::create_dir_all(dir)?;
    let ca = new_ca("ae-test temporal CA")?;
    let stranger_ca = new_ca("ae-test stranger CA")?;
    let (server_cert, server_key) = leaf(&ca, "temporal", ExtendedKeyUsagePurpose::ServerAuth)?;
    let (client_cert, client_key) = leaf(&ca, "ae-worker", ExtendedKeyUsagePurpose::ClientAuth)?;
    let (stranger_cert, stranger_key) = leaf(
        &stranger_ca,
        "ae-worker",
        ExtendedKeyUsagePurpose::ClientAuth,
    )?;
    let write = |name: &str, pem: String| -> anyhow::Result<PathBuf> {
        let path = dir.join(name);
        std::fs::write(&path, pem).with_context(|| format!("write {}", path.display()))?;
        Ok(path)
    };
    let ca_cert = write("ca.pem", ca.cert.pem())?;
    let client_cert_path = write("client.pem", client_cert.pem())?;
    let client_key_path = write("client.key", client_key.serialize_pem())?;
    let stranger_cert_path = write("stranger.pem", stranger_cert.pem())?;
    let stranger_key_path = write("stranger.key", stranger_key.serialize_pem())?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    roots.add(ca.cert.der().clone())?;
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .context("client verifier")?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![
                CertificateDer::from(server_cert.der().to_vec()),
                ca.cert.der().clone(),
            ],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
        )?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(config));

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?.to_string();
    let accepted = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let upstream = upstream.to_string();
    let task = {
        let (accepted, refused) = (accepted.clone(), refused.clone());
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, upstream) = (acceptor.clone(), upstream.clone());
                let (accepted, refused) = (accepted.clone(), refused.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        refused.fetch_add(1, Ordering::SeqCst);
                        return;
                    };
                    accepted.fetch_add(1, Ordering::SeqCst);
                    if let Ok(mut up) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
                    }
                });
            }
        })
    };
    Ok(MtlsFront {
        address,
        ca_cert,
        client_cert: client_cert_path,
        client_key: client_key_path,
        stranger_cert: stranger_cert_path,
        stranger_key: stranger_key_path,
        accepted,
        refused,
        task,
    })
}
