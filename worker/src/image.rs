//! `ae-worker image build`: the default sandbox image, built offline.
//!
//! No registry is reachable, so nothing is pulled: the image is `FROM scratch` with the host's
//! statically linked busybox (Debian's `busybox-static`), its applets, a passwd entry for the
//! unprivileged user the commands run as, and the `/workspace` and `/tmp` mount points. The build
//! context is a tar made here and sent to the engine's build API.

use anyhow::{Context, bail};
use bollard::Docker;
use bollard::query_parameters::BuildImageOptionsBuilder;
use futures::StreamExt;
use std::path::PathBuf;

/// Options of `ae-worker image build`.
#[derive(clap::Args, Debug)]
pub struct BuildArgs {
    /// Image name to build.
    #[arg(long, env = "AE_SANDBOX_IMAGE", default_value = "ae-sandbox:latest")]
    pub tag: String,
    /// The statically linked busybox to put in the image.
    #[arg(long, env = "AE_BUSYBOX", default_value = "/bin/busybox")]
    pub busybox: PathBuf,
}

const DOCKERFILE: &str = r#"FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
COPY passwd group /etc/
RUN ["/bin/busybox", "mkdir", "-p", "/workspace", "/tmp", "/usr/bin", "/sbin"]
RUN ["/bin/busybox", "chmod", "1777", "/tmp"]
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
USER 65534:65534
WORKDIR /workspace
LABEL ae.image="busybox"
"#;

const PASSWD: &str =
    "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/workspace:/bin/sh\n";
const GROUP: &str = "root:x:0:\nnogroup:x:65534:\n";

/// Builds the image and prints the engine's build log.
pub async fn build(args: BuildArgs) -> anyhow::Result<()> {
    let busybox = std::fs::read(&args.busybox).with_context(|| {
        format!(
            "cannot read {} (install Debian's busybox-static: scripts/install-deps.sh)",
            args.busybox.display()
        )
    })?;
    let context = build_context(&busybox)?;
    let docker = Docker::connect_with_defaults()
        .context("cannot reach Docker")?
        .negotiate_version()
        .await
        .context("cannot reach Docker")?;
    let opts = BuildImageOptionsBuilder::default()
        .t(&args.tag)
        .rm(true)
        .forcerm(true)
        .pull("false")
        .build();
    let body = bollard::body_full(context.into());
    let mut stream = docker.build_image(opts, None, Some(body));
    while let Some(item) = stream.next().await {
        let info = item.context("image build failed")?;
        if let Some(line) = info.stream {
            print!("{line}");
        }
        if let Some(err) = info.error_detail.and_then(|d| d.message) {
            bail!("image build failed: {err}");
        }
    }
    println!("built {}", args.tag);
    Ok(())
}

fn build_context(busybox: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8], mode: u32| -> std::io::Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut h, name, data)
    };
    add("Dockerfile", DOCKERFILE.as_bytes(), 0o644)?;
    add("busybox", busybox, 0o755)?;
    add("passwd", PASSWD.as_bytes(), 0o644)?;
    add("group", GROUP.as_bytes(), 0o644)?;
    Ok(tar.into_inner()?)
}
