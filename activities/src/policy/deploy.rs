//! Deploys, infrastructure changes and publishing, in the spellings of each tool.

use super::analyze::{Analyzer, Field, State};

/// The positional words of a command, skipping options (and the values of `valued` ones).
fn positionals<'a>(args: &'a [Field], valued: &[&str]) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = args[i].s.as_str();
        if a == "--" {
            break;
        }
        if a.starts_with('-') && a.len() > 1 {
            if !a.contains('=') && valued.contains(&a) {
                i += 1;
            }
        } else {
            out.push(a);
        }
        i += 1;
    }
    out
}

fn flag(args: &[Field], f: &str) -> bool {
    args.iter()
        .any(|a| a.s == f || a.s.starts_with(&format!("{f}=")))
}

const DEPLOY: &str = "production-deploy";
const INFRA: &str = "infra-change";
const PUBLISH: &str = "package-publish";

/// `docker exec … CMD`, `kubectl exec … -- CMD`, `docker run IMAGE CMD`: the inner command.
pub fn container_exec(n: &str, args: &[Field]) -> Option<Vec<Field>> {
    let mut a = args;
    if matches!(n, "microk8s" | "k3s") && a.first().is_some_and(|x| x.s == "kubectl") {
        a = &a[1..];
    }
    let sub = a.first()?.s.as_str();
    match (n, sub) {
        ("kubectl" | "oc" | "microk8s" | "k3s", "exec") => {
            let k = a.iter().position(|x| x.s == "--")?;
            Some(a[k + 1..].to_vec())
        }
        ("docker" | "podman" | "nerdctl", "exec" | "run") | ("docker" | "podman", "compose") => {
            let (rest, needs_svc) = if sub == "compose" {
                let s = a.get(1)?.s.as_str();
                if s != "exec" && s != "run" {
                    return None;
                }
                (&a[2..], true)
            } else {
                (&a[1..], true)
            };
            let valued = [
                "-e",
                "--env",
                "-u",
                "--user",
                "-w",
                "--workdir",
                "--env-file",
                "-v",
                "--volume",
                "-p",
                "--publish",
                "--name",
                "--network",
                "--net",
                "--entrypoint",
                "-m",
                "--memory",
                "--cpus",
                "-l",
                "--label",
                "--mount",
                "--add-host",
                "--platform",
                "--hostname",
                "-h",
                "--restart",
                "--log-driver",
                "--log-opt",
                "--shm-size",
                "--ulimit",
                "--device",
                "--cap-add",
                "--cap-drop",
                "--security-opt",
                "--tmpfs",
                "--volumes-from",
                "--link",
                "--dns",
                "-a",
                "--attach",
                "--cidfile",
                "--pull",
                "--gpus",
                "--detach-keys",
                "--pid",
                "--ipc",
                "--runtime",
                "--stop-signal",
                "--stop-timeout",
                "--health-cmd",
                "--ip",
                "--mac-address",
                "--memory-swap",
                "--group-add",
                "--init-path",
                "--cgroup-parent",
                "--expose",
                "--index",
                "--profile",
            ];
            let mut i = 0;
            while i < rest.len() {
                let x = rest[i].s.as_str();
                if x == "--" {
                    i += 1;
                    break;
                }
                if !x.starts_with('-') {
                    break;
                }
                if valued.contains(&x) {
                    i += 1;
                }
                i += 1;
            }
            if needs_svc {
                i += 1;
            }
            // Images whose entrypoint is a deploy or infrastructure tool.
            let tool = rest.get(i.wrapping_sub(1)).and_then(|img| {
                let base = img.s.rsplit('/').next().unwrap_or("");
                let base = base.split([':', '@']).next().unwrap_or("");
                let t = match base {
                    "terraform" | "kubectl" | "helm" | "pulumi" | "vercel" | "wrangler"
                    | "flyctl" | "opentofu" | "tofu" | "terragrunt" | "ansible" | "skopeo"
                    | "crane" => base,
                    "netlify-cli" => "netlify",
                    "aws-cli" | "awscli" => "aws",
                    "cloud-sdk" | "google-cloud-cli" | "gcloud" => "gcloud",
                    "azure-cli" => "az",
                    "firebase-tools" => "firebase",
                    _ => return None,
                };
                Some(if t == "opentofu" { "tofu" } else { t })
            });
            let mut inner: Vec<Field> = rest.get(i..).map(|r| r.to_vec()).unwrap_or_default();
            if let Some(t) = tool
                && sub == "run"
                && inner.first().is_none_or(|f| f.s != t)
            {
                inner.insert(0, Field::lit(t));
            }
            if inner.is_empty() { None } else { Some(inner) }
        }
        _ => None,
    }
}

pub fn deploy(az: &mut Analyzer<'_>, _st: &mut State, n: &str, args: &[Field]) {
    if args
        .iter()
        .any(|a| a.s == "--help" || a.s == "-h" || a.s == "--version")
        || args.first().is_some_and(|a| a.s == "help")
    {
        return;
    }
    let pos = |valued: &[&str]| positionals(args, valued);
    let p0 = |v: &[&str]| pos(v).first().map(|s| s.to_string()).unwrap_or_default();
    match n {
        "vercel" | "now" => {
            let p = pos(&[
                "--token",
                "-t",
                "--scope",
                "-S",
                "--team",
                "-A",
                "--local-config",
                "-Q",
                "--global-config",
                "--cwd",
                "-e",
                "--env",
                "-b",
                "--build-env",
                "-m",
                "--meta",
                "--target",
                "--archive",
            ]);
            let safe = [
                "dev",
                "build",
                "login",
                "logout",
                "whoami",
                "pull",
                "link",
                "help",
                "init",
                "ls",
                "list",
                "inspect",
                "logs",
                "switch",
                "teams",
                "whoami",
                "project",
                "projects",
                "env",
                "git",
                "certs",
                "dns",
                "domains",
                "bisect",
                "telemetry",
                "--version",
                "-v",
            ];
            let sub = p.first().copied().unwrap_or("");
            let env_mutation = sub == "env"
                && p.get(1)
                    .is_some_and(|s| matches!(*s, "add" | "rm" | "remove"));
            let prod_flag = flag(args, "--prod") || flag(args, "--target");
            if !safe.contains(&sub)
                || env_mutation
                || (prod_flag && !matches!(sub, "build" | "pull" | "env" | "dev"))
            {
                az.hit(
                    DEPLOY,
                    "vercel deploys, promotes, rolls back or changes a project",
                );
            }
        }
        "netlify" | "ntl" => {
            let s = p0(&[
                "--auth",
                "--site",
                "--dir",
                "-d",
                "--functions",
                "-f",
                "--message",
                "-m",
                "--alias",
                "--filter",
                "--context",
            ]);
            if s.starts_with("deploy")
                || s.contains(":delete")
                || s == "rollback"
                || s.starts_with("env:set")
                || s.starts_with("env:unset")
                || s == "api"
                || s == "sites:create"
            {
                az.hit(DEPLOY, "netlify deploys or changes a site");
            }
        }
        "kubectl" | "oc" | "microk8s" | "k3s" | "kubecolor" => {
            let v = [
                "-n",
                "--namespace",
                "--context",
                "--cluster",
                "--kubeconfig",
                "--user",
                "-s",
                "--server",
                "--token",
                "-l",
                "--selector",
                "-f",
                "--filename",
                "-o",
                "--output",
                "-c",
                "--container",
                "-k",
                "--kustomize",
                "--as",
                "--as-group",
                "--field-selector",
                "--request-timeout",
                "--timeout",
                "--replicas",
                "--image",
                "-p",
                "--patch",
                "--type",
                "--grace-period",
            ];
            let mut p = pos(&v);
            if matches!(n, "microk8s" | "k3s") && p.first() == Some(&"kubectl") {
                p.remove(0);
            }
            let sub = p.first().copied().unwrap_or("");
            let mutating = matches!(
                sub,
                "apply"
                    | "create"
                    | "patch"
                    | "delete"
                    | "scale"
                    | "replace"
                    | "set"
                    | "edit"
                    | "annotate"
                    | "label"
                    | "drain"
                    | "cordon"
                    | "uncordon"
                    | "taint"
                    | "autoscale"
                    | "expose"
                    | "run"
                    | "exec"
                    | "cp"
                    | "debug"
                    | "certificate"
                    | "attach"
            ) || (sub == "rollout"
                && !p.get(1).is_some_and(|s| matches!(*s, "status" | "history")));
            let dry = args
                .iter()
                .any(|a| a.s.starts_with("--dry-run") && a.s != "--dry-run=none");
            if mutating && !dry {
                az.hit(INFRA, format!("kubectl {sub} changes a cluster"));
            }
        }
        "helm" | "helmfile" => {
            let p = pos(&[
                "-n",
                "--namespace",
                "--kube-context",
                "-f",
                "--values",
                "--set",
                "--set-string",
                "--version",
                "--kubeconfig",
                "-e",
                "--environment",
                "--repo",
                "--timeout",
                "-l",
                "--selector",
                "--file",
            ]);
            let sub = p.first().copied().unwrap_or("");
            let muta = matches!(
                sub,
                "install"
                    | "upgrade"
                    | "rollback"
                    | "uninstall"
                    | "delete"
                    | "del"
                    | "un"
                    | "push"
                    | "apply"
                    | "sync"
                    | "destroy"
            );
            if muta && !flag(args, "--dry-run") {
                az.hit(INFRA, format!("{n} {sub} changes a cluster"));
            }
        }
        "terraform" | "tofu" | "terragrunt" | "opentofu" | "terraform-bin" | "cdktf" | "tf" => {
            let p = pos(&[
                "-chdir",
                "-var",
                "-var-file",
                "-target",
                "-state",
                "-backup",
                "-lock-timeout",
                "-parallelism",
                "-replace",
            ]);
            let sub = p.first().copied().unwrap_or("");
            let second = p.get(1).copied().unwrap_or("");
            let muta = matches!(
                sub,
                "apply"
                    | "destroy"
                    | "import"
                    | "taint"
                    | "untaint"
                    | "force-unlock"
                    | "apply-all"
                    | "destroy-all"
                    | "deploy"
                    | "refresh"
            ) || (sub == "state"
                && matches!(second, "rm" | "mv" | "push" | "replace-provider"))
                || (sub == "workspace" && second == "delete")
                || (sub == "run-all" && matches!(second, "apply" | "destroy" | "import"))
                || (sub == "run" && matches!(second, "apply" | "destroy"));
            if muta {
                az.hit(INFRA, format!("{n} {sub} changes infrastructure"));
            }
        }
        "pulumi" => {
            let p = pos(&[
                "-s",
                "--stack",
                "-C",
                "--cwd",
                "--config-file",
                "-c",
                "--config",
                "-m",
                "--message",
                "--target",
                "-t",
                "--parallel",
                "-p",
            ]);
            let sub = p.first().copied().unwrap_or("");
            let second = p.get(1).copied().unwrap_or("");
            if matches!(
                sub,
                "up" | "update" | "destroy" | "import" | "refresh" | "cancel" | "down"
            ) || (sub == "stack" && matches!(second, "rm" | "remove"))
                || (sub == "state" && matches!(second, "delete" | "unprotect" | "edit" | "move"))
            {
                az.hit(INFRA, format!("pulumi {sub} changes infrastructure"));
            }
        }
        "wrangler" | "wrangler2" => {
            let p = pos(&[
                "-c",
                "--config",
                "-e",
                "--env",
                "--name",
                "--compatibility-date",
                "--project-name",
                "--branch",
                "--binding",
                "--database",
            ]);
            let sub = p.first().copied().unwrap_or("");
            let second = p.get(1).copied().unwrap_or("");
            if matches!(sub, "deploy" | "publish" | "delete" | "rollback")
                || (sub == "pages" && matches!(second, "deploy" | "publish"))
                || (sub == "versions" && matches!(second, "deploy" | "upload"))
                || (sub == "triggers" && second == "deploy")
                || (sub == "secret" && matches!(second, "put" | "delete" | "bulk"))
                || (matches!(
                    sub,
                    "d1" | "kv" | "r2" | "kv:key" | "kv:namespace" | "queues"
                ) && flag(args, "--remote")
                    && !matches!(second, "list" | "info"))
                || (matches!(sub, "kv:key" | "kv:namespace" | "kv:bulk")
                    && matches!(second, "put" | "delete"))
            {
                az.hit(
                    DEPLOY,
                    format!("wrangler {sub} deploys or changes a Worker"),
                );
            }
        }
        "fly" | "flyctl" => {
            let p = pos(&[
                "-a",
                "--app",
                "-c",
                "--config",
                "-r",
                "--region",
                "--image",
                "-i",
                "-t",
                "--access-token",
                "-o",
                "--org",
                "--strategy",
                "--vm-size",
                "--env",
                "-e",
            ]);
            let sub = p.first().copied().unwrap_or("");
            let second = p.get(1).copied().unwrap_or("");
            let safe_sub = matches!(
                sub,
                "status"
                    | "logs"
                    | "auth"
                    | "version"
                    | "doctor"
                    | "help"
                    | "dashboard"
                    | "ssh"
                    | "proxy"
                    | "config"
                    | "platform"
                    | "docs"
                    | "checks"
                    | "ping"
                    | "ips"
                    | "regions"
                    | "orgs"
                    | "tokens"
                    | "info"
            ) && !(sub == "ips"
                && matches!(second, "allocate-v4" | "allocate-v6" | "release"));
            let safe_second = matches!(
                second,
                "list" | "ls" | "status" | "show" | "logs" | "history"
            );
            if !sub.is_empty() && !safe_sub && !safe_second {
                az.hit(DEPLOY, format!("fly {sub} deploys or changes an app"));
            }
        }
        "gcloud" | "gsutil" | "firebase" | "aws" | "az" | "heroku" | "serverless" | "sls"
        | "sst" | "cdk" | "sam" | "eb" | "railway" | "amplify" | "copilot" | "doctl" | "eksctl"
        | "kamal" | "cap" | "mina" | "surge" | "gh-pages" | "argocd" | "skaffold" | "nomad"
        | "flux" | "render" | "ansible-playbook" | "ansible" | "vault" | "consul"
        | "linode-cli" | "hcloud" | "scw" | "ibmcloud" | "oci" | "aliyun" | "doctl-apps"
        | "dokku" | "caprover" | "zeit" | "deployctl" | "shuttle" | "cargo-shuttle" | "turso"
        | "neonctl" | "planetscale" | "pscale" | "vultr-cli" | "exoscale" | "up" | "func"
        | "azd" | "kn" | "kustomize" | "kapp" | "ytt" | "gh" | "glab" => cloud(az, n, args),
        "docker" | "podman" | "buildah" | "skopeo" | "nerdctl" | "crane" | "ko" | "jib"
        | "regctl" | "oras" => {
            let p = pos(&[
                "-t",
                "--tag",
                "-f",
                "--file",
                "--platform",
                "--build-arg",
                "--target",
                "-o",
                "--output",
                "--cache-from",
                "--cache-to",
                "--label",
                "--secret",
                "--ssh",
                "-H",
                "--host",
                "--context",
                "--config",
                "-c",
                "--progress",
                "--builder",
                "-p",
                "--project-name",
                "--env-file",
                "--profile",
            ]);
            let sub = p.first().copied().unwrap_or("");
            let second = p.get(1).copied().unwrap_or("");
            let push = matches!(sub, "push")
                || (matches!(sub, "image" | "manifest" | "compose" | "trust") && second == "push")
                || ((sub == "buildx" || sub == "build" || sub == "image")
                    && (flag(args, "--push")
                        || args
                            .iter()
                            .any(|a| a.s.contains("type=registry") || a.s.contains("push=true"))))
                || (n == "skopeo" && matches!(sub, "copy" | "sync" | "delete"))
                || (n == "crane"
                    && matches!(
                        sub,
                        "push" | "copy" | "cp" | "tag" | "delete" | "append" | "mutate" | "rebase"
                    ))
                || (n == "ko"
                    && matches!(sub, "apply" | "build" | "publish" | "resolve")
                    && !flag(args, "--local")
                    && !args.iter().any(|a| a.s.starts_with("--push=false")))
                || (n == "oras" && sub == "push")
                || (n == "regctl" && matches!(second, "put" | "copy" | "delete" | "rm"));
            if push {
                az.hit(DEPLOY, "pushes a container image to a registry");
            }
            let swarm = matches!(
                sub,
                "stack" | "service" | "swarm" | "node" | "secret" | "config"
            ) && matches!(
                second,
                "deploy"
                    | "up"
                    | "rm"
                    | "remove"
                    | "update"
                    | "scale"
                    | "create"
                    | "rollback"
                    | "leave"
                    | "init"
                    | "promote"
                    | "demote"
            );
            if swarm
                || (sub == "context"
                    && second == "use"
                    && p.get(2).is_some_and(|c| c.contains("prod")))
            {
                az.hit(INFRA, "changes a docker swarm or production context");
            }
        }
        "twine" | "flit" | "cargo" | "gem" | "mvn" | "gradle" | "gradlew" | "./gradlew" | "sbt"
        | "lein" | "mix" | "hex" | "poetry" | "hatch" | "pdm" | "uv" | "dotnet" | "nuget"
        | "jreleaser" | "goreleaser" | "semantic-release" | "changeset" | "changesets"
        | "lerna" | "release-it" | "np" | "vsce" | "ovsx" | "helm-push" | "pod" | "swift"
        | "deno" | "jsr" | "rye" | "maturin" | "conan" | "rebar3" => publish(az, n, args),
        _ => {}
    }
}

fn publish(az: &mut Analyzer<'_>, n: &str, args: &[Field]) {
    let p = positionals(
        args,
        &[
            "-p",
            "--package",
            "--registry",
            "--token",
            "-r",
            "--repository",
            "-u",
            "-P",
            "--project",
            "-s",
            "-c",
            "--config",
            "--username",
            "--password",
            "--manifest-path",
            "--target",
            "--features",
        ],
    );
    let sub = p.first().copied().unwrap_or("");
    let second = p.get(1).copied().unwrap_or("");
    let yes = match n {
        "twine" => sub == "upload",
        "flit" | "poetry" | "hatch" | "pdm" | "uv" | "rye" | "maturin" => {
            sub == "publish" || (n == "maturin" && sub == "upload")
        }
        "cargo" => {
            matches!(sub, "publish" | "yank" | "owner")
                || (sub == "shuttle" && second == "deploy")
                || (sub == "lambda" && second == "deploy")
        }
        "gem" => matches!(sub, "push" | "yank" | "owner"),
        "mvn" => p.iter().any(|s| {
            *s == "deploy"
                || s.starts_with("deploy:")
                || s.contains("release:perform")
                || s.contains("nexus-staging")
                || s.contains("jib:build")
        }),
        "gradle" | "gradlew" | "./gradlew" => p.iter().any(|s| {
            let l = s.to_ascii_lowercase();
            l.contains("publish")
                || l.contains("deploy")
                || l.contains("jib") && !l.contains("jibdockerbuild")
                || l.contains("closeandrelease")
                || l.contains("release")
        }),
        "sbt" => p
            .iter()
            .any(|s| s.contains("publish") || s.contains("release")),
        "lein" => matches!(sub, "deploy" | "release"),
        "mix" | "hex" => sub == "hex.publish" || (n == "hex" && sub == "publish"),
        "dotnet" => {
            (sub == "nuget" && second == "push")
                || (sub == "publish" && args.iter().any(|a| a.s.contains("PublishProfile")))
        }
        "nuget" => sub == "push" || sub == "delete",
        "jreleaser" => matches!(
            sub,
            "release" | "full-release" | "deploy" | "publish" | "upload" | "announce"
        ),
        "goreleaser" => {
            (sub == "release" || sub.is_empty())
                && !flag(args, "--snapshot")
                && !flag(args, "--skip=publish")
                && !args.iter().any(|a| a.s == "--skip-publish")
        }
        "semantic-release" | "release-it" | "np" => !flag(args, "--dry-run") && !flag(args, "-d"),
        "changeset" | "changesets" => sub == "publish",
        "lerna" => sub == "publish",
        "vsce" | "ovsx" => sub == "publish" || sub == "unpublish",
        "pod" => sub == "trunk" && second == "push",
        "deno" | "jsr" => sub == "publish" && !flag(args, "--dry-run"),
        "conan" => sub == "upload",
        "rebar3" => sub == "hex" && second == "publish",
        _ => false,
    };
    if yes && !flag(args, "--dry-run") {
        az.hit(PUBLISH, format!("{n} publishes a package or release"));
    }
}

fn cloud(az: &mut Analyzer<'_>, n: &str, args: &[Field]) {
    let valued = [
        "--profile",
        "--region",
        "--output",
        "-o",
        "--endpoint-url",
        "--query",
        "--project",
        "--account",
        "--configuration",
        "--format",
        "--zone",
        "-g",
        "--resource-group",
        "-n",
        "--name",
        "--subscription",
        "-a",
        "--app",
        "-r",
        "--remote",
        "--stage",
        "-s",
        "--config",
        "-c",
        "--context",
        "-e",
        "--environment",
        "--env",
        "-i",
        "--inventory",
        "-l",
        "--limit",
        "-u",
        "--user",
        "--vault-password-file",
        "--extra-vars",
        "-t",
        "--tags",
        "--token",
        "--team",
        "--org",
        "--namespace",
        "--server",
        "--repo",
        "-R",
        "--body",
        "--title",
        "-m",
        "-f",
        "--file",
        "--site",
        "--ref",
        "--json",
        "--jq",
        "--template",
        "--hostname",
        "--method",
        "-X",
        "-F",
        "--field",
        "-H",
        "--header",
    ];
    let p = positionals(args, &valued);
    let s0 = p.first().copied().unwrap_or("");
    let s1 = p.get(1).copied().unwrap_or("");
    let mutating_verb = |w: &str| {
        matches!(
            w,
            "deploy"
                | "delete"
                | "create"
                | "update"
                | "patch"
                | "set-iam-policy"
                | "add-iam-policy-binding"
                | "remove-iam-policy-binding"
                | "rollback"
                | "promote"
                | "set-traffic"
                | "update-traffic"
                | "resize"
                | "start"
                | "stop"
                | "reset"
                | "restart"
                | "import"
                | "restore"
                | "apply"
                | "destroy"
                | "up"
                | "down"
                | "swap"
                | "scale"
                | "purge"
                | "remove"
                | "publish"
                | "release"
                | "submit"
                | "terminate"
                | "reboot"
                | "rm"
                | "rb"
                | "mv"
                | "sync"
                | "put"
                | "upload"
                | "set"
                | "upsert"
                | "enable"
                | "disable"
                | "invoke"
                | "execute"
                | "run"
                | "push"
                | "redeploy"
                | "kill"
                | "attach"
                | "detach"
                | "replace"
                | "modify"
                | "assign"
        ) || w.starts_with("create-")
            || w.starts_with("update-")
            || w.starts_with("delete-")
            || w.starts_with("put-")
            || w.starts_with("terminate-")
            || w.starts_with("modify-")
            || w.starts_with("attach-")
            || w.starts_with("detach-")
            || w.starts_with("remove-")
            || w.starts_with("add-")
            || w.starts_with("register-")
            || w.starts_with("deregister-")
            || w.starts_with("publish-")
            || w.starts_with("start-")
            || w.starts_with("stop-")
            || w.starts_with("reboot-")
            || w.starts_with("set-")
            || w.starts_with("run-")
            || w.starts_with("revoke-")
            || w.starts_with("authorize-")
            || w.starts_with("disable-")
            || w.starts_with("enable-")
            || w.starts_with("restore-")
            || w.starts_with("import-")
            || w.starts_with("invoke")
            || w.starts_with("send-")
    };
    let (rule, hit) = match n {
        "gcloud" => {
            let local = matches!(
                s0,
                "config"
                    | "auth"
                    | "components"
                    | "info"
                    | "version"
                    | "help"
                    | "init"
                    | "topic"
                    | "cheat-sheet"
                    | "feedback"
                    | "survey"
            );
            let iam = p.iter().any(|w| w.contains("iam-policy") || *w == "iam");
            let deploys = p.contains(&"deploy") || p.contains(&"builds") && p.contains(&"submit");
            let any = p.iter().skip(1).any(|w| mutating_verb(w));
            if local {
                (DEPLOY, false)
            } else if iam && any {
                ("permission-change", true)
            } else if deploys {
                (DEPLOY, true)
            } else {
                (INFRA, any)
            }
        }
        "gsutil" => (
            DEPLOY,
            matches!(s0, "cp" | "rsync" | "mv") && p.last().is_some_and(|d| d.starts_with("gs://"))
                || matches!(s0, "rm" | "rb" | "iam" | "acl" | "setmeta" | "defacl"),
        ),
        "aws" => {
            if s0 == "s3" {
                let dest_remote = p.last().is_some_and(|d| d.starts_with("s3://"));
                (
                    DEPLOY,
                    matches!(s1, "rm" | "rb" | "mb")
                        || (matches!(s1, "cp" | "sync" | "mv") && dest_remote && p.len() >= 4),
                )
            } else if s0 == "iam" || s0 == "sso-admin" || s0 == "organizations" {
                ("permission-change", mutating_verb(s1))
            } else if matches!(s0, "configure" | "sts" | "help" | "ecr" if s1 == "get-login-password")
                || s0 == "configure"
                || s0 == "sso" && s1 == "login"
            {
                (INFRA, false)
            } else if s1 == "deploy"
                || s0 == "deploy"
                || (s0 == "lambda" && s1.starts_with("update-function"))
                || (s0 == "ecs" && s1 == "update-service")
                || (s0 == "cloudformation" && (s1.ends_with("-stack") || s1 == "deploy"))
                || (s0 == "elasticbeanstalk" && s1 == "update-environment")
                || s0 == "amplify" && s1 == "start-job"
            {
                (DEPLOY, true)
            } else {
                (INFRA, mutating_verb(s1))
            }
        }
        "az" => {
            let local = matches!(
                s0,
                "login"
                    | "logout"
                    | "account"
                    | "config"
                    | "configure"
                    | "extension"
                    | "version"
                    | "upgrade"
                    | "bicep"
                    | "find"
                    | "interactive"
                    | "cloud"
                    | "init"
            );
            let deploys = p.iter().any(|w| *w == "deploy" || *w == "up")
                || p.windows(2).any(|w| w[0] == "deployment" && w[1] != "list");
            let roles = p.contains(&"role") || p.contains(&"ad");
            let any = p.iter().skip(1).any(|w| mutating_verb(w));
            if local {
                (DEPLOY, false)
            } else if roles && any {
                ("permission-change", true)
            } else if deploys {
                (DEPLOY, true)
            } else {
                (INFRA, any)
            }
        }
        "firebase" => (
            DEPLOY,
            s0 == "deploy"
                || s0.starts_with("hosting:channel:deploy")
                || s0.ends_with(":delete")
                || s0.ends_with(":remove")
                || s0 == "database:set"
                || s0 == "database:update"
                || s0 == "database:push"
                || s0 == "hosting:disable"
                || s0 == "hosting:clone"
                || s0.starts_with("functions:config:set")
                || s0.starts_with("functions:secrets:set")
                || s0 == "firestore:delete"
                || s0 == "apphosting:rollouts:create",
        ),
        "heroku" => (
            DEPLOY,
            !matches!(s0, "login" | "logout" | "auth:whoami" | "apps" | "apps:info" | "logs" | "ps" | "releases" | "config" | "config:get" | "help" | "version" | "status" | "addons" | "pg:info" | "domains" | "access" | "whoami" | "local" | "local:start" | "git:remote" | "buildpacks" | "plugins" | "" | "run:detached" if s0 != "run:detached"),
        ),
        "serverless" | "sls" | "sst" => (
            DEPLOY,
            matches!(s0, "deploy" | "remove" | "rollback" | "invoke" if s0 != "invoke")
                || (s0 == "deploy" || s0 == "remove" || s0 == "rollback")
                || (n == "sst"
                    && matches!(s0, "deploy" | "remove" | "secrets" if s1 == "set" || s0 != "secrets")),
        ),
        "cdk" => (
            DEPLOY,
            matches!(
                s0,
                "deploy" | "destroy" | "bootstrap" | "import" | "rollback" | "watch" | "migrate"
            ),
        ),
        "sam" => (
            DEPLOY,
            matches!(s0, "deploy" | "delete" | "sync" | "publish"),
        ),
        "eb" => (
            DEPLOY,
            matches!(
                s0,
                "deploy"
                    | "terminate"
                    | "create"
                    | "swap"
                    | "scale"
                    | "setenv"
                    | "restore"
                    | "upgrade"
                    | "abort"
                    | "clone"
            ),
        ),
        "railway" => (
            DEPLOY,
            matches!(s0, "up" | "down" | "redeploy" | "deploy" | "delete" | "variables" if s0 != "variables" || p.contains(&"set") || args.iter().any(|a| a.s == "--set")),
        ),
        "amplify" => (DEPLOY, matches!(s0, "publish" | "push" | "delete")),
        "copilot" => (DEPLOY, p.iter().any(|w| matches!(*w, "deploy" | "delete"))),
        "doctl" | "linode-cli" | "hcloud" | "scw" | "ibmcloud" | "oci" | "aliyun" | "vultr-cli"
        | "exoscale" | "neonctl" | "pscale" | "planetscale" | "turso" => (
            INFRA,
            p.iter()
                .any(|w| mutating_verb(w) || *w == "create-deployment"),
        ),
        "eksctl" => (
            INFRA,
            matches!(
                s0,
                "create"
                    | "delete"
                    | "upgrade"
                    | "scale"
                    | "set"
                    | "unset"
                    | "drain"
                    | "update"
                    | "enable"
                    | "disable"
            ),
        ),
        "kamal" | "mina" => (
            DEPLOY,
            matches!(s0, "deploy" | "rollback" | "remove" | "setup" | "redeploy" | "app" if s0 != "app" || matches!(s1, "boot" | "start" | "stop" | "remove" | "exec")),
        ),
        "cap" => (
            DEPLOY,
            p.iter()
                .any(|w| w.contains("deploy") || w.contains("rollback")),
        ),
        "surge" | "gh-pages" | "deployctl" | "zeit" | "dokku" | "caprover" | "shuttle"
        | "cargo-shuttle" | "up" | "render" => (
            DEPLOY,
            match n {
                "surge" => !matches!(s0, "login" | "logout" | "whoami" | "list" | "--help" | "-h"),
                "gh-pages" => true,
                "deployctl" => s0 == "deploy",
                "render" => matches!(s0, "deploy" | "deploys" if s1 == "create" || s0 == "deploy"),
                _ => true,
            },
        ),
        "argocd" => (
            INFRA,
            matches!(s0, "app" | "proj" | "cluster" | "repo")
                && matches!(
                    s1,
                    "sync"
                        | "delete"
                        | "rollback"
                        | "set"
                        | "create"
                        | "patch"
                        | "terminate-op"
                        | "actions"
                        | "add"
                        | "rm"
                ),
        ),
        "skaffold" => (DEPLOY, matches!(s0, "run" | "deploy" | "delete" | "apply")),
        "nomad" => (
            INFRA,
            (s0 == "job"
                && matches!(
                    s1,
                    "run" | "stop" | "revert" | "dispatch" | "scale" | "promote"
                ))
                || s0 == "run"
                || s0 == "stop",
        ),
        "flux" => (
            INFRA,
            matches!(
                s0,
                "reconcile"
                    | "suspend"
                    | "resume"
                    | "delete"
                    | "create"
                    | "bootstrap"
                    | "uninstall"
            ),
        ),
        "ansible-playbook" => (
            INFRA,
            !args.iter().any(|a| {
                matches!(
                    a.s.as_str(),
                    "--check"
                        | "-C"
                        | "--syntax-check"
                        | "--list-hosts"
                        | "--list-tasks"
                        | "--list-tags"
                )
            }),
        ),
        "ansible" => (
            INFRA,
            args.iter().any(|a| {
                a.s == "-m"
                    || a.s == "-a"
                    || a.s.starts_with("--module-name")
                    || a.s.starts_with("--args")
            }) && !args
                .iter()
                .any(|a| a.s == "ping" || a.s == "setup" || a.s == "--check"),
        ),
        "vault" => (
            INFRA,
            matches!(s0, "write" | "delete" | "kv" if s0 != "kv" || matches!(s1, "put" | "delete" | "destroy" | "patch" | "metadata"))
                || (s0 == "policy" && matches!(s1, "write" | "delete"))
                || (s0 == "secrets" && matches!(s1, "disable" | "enable"))
                || (s0 == "auth" && matches!(s1, "disable" | "enable")),
        ),
        "consul" => (
            INFRA,
            (s0 == "kv" && matches!(s1, "put" | "delete"))
                || (s0 == "services" && s1 == "deregister"),
        ),
        "func" => (
            DEPLOY,
            matches!(s0, "azure" if s1 == "functionapp") && p.contains(&"publish")
                || s0 == "deploy",
        ),
        "azd" => (DEPLOY, matches!(s0, "up" | "deploy" | "provision" | "down")),
        "kn" => (
            INFRA,
            p.iter()
                .skip(1)
                .any(|w| matches!(*w, "create" | "update" | "delete" | "apply")),
        ),
        "kustomize" | "ytt" => (INFRA, false),
        "kapp" => (INFRA, matches!(s0, "deploy" | "delete" | "app-change")),
        "gh" | "glab" => {
            let repo_del = (s0 == "repo" && matches!(s1, "delete" | "archive" | "rename" | "edit"))
                || (s0 == "release" && matches!(s1, "create" | "delete" | "upload" | "edit"));
            let secret =
                matches!(s0, "secret" | "variable") && matches!(s1, "set" | "delete" | "remove");
            let api_write = s0 == "api"
                && args.iter().any(|a| a.s == "-X" || a.s == "--method")
                && args
                    .iter()
                    .any(|a| matches!(a.s.as_str(), "DELETE" | "PUT" | "PATCH" | "POST"));
            let wf = s0 == "workflow"
                && matches!(s1, "run" | "disable" | "enable")
                && args.iter().any(|a| {
                    a.s.contains("deploy") || a.s.contains("release") || a.s.contains("prod")
                })
                || (s0 == "workflow" && s1 == "disable");
            if s0 == "pr" && s1 == "merge" && args.iter().any(|a| a.s == "--admin") {
                ("git-push-protected-branch", true)
            } else if repo_del || api_write {
                ("git-delete-branch", s0 == "repo" && s1 == "delete")
                    .pipe(|(r, d)| if d { (r, true) } else { (DEPLOY, true) })
            } else if secret {
                ("permission-change", true)
            } else if wf {
                (DEPLOY, true)
            } else {
                (DEPLOY, false)
            }
        }
        _ => (DEPLOY, false),
    };
    if hit {
        az.hit(rule, format!("{n} {s0} deploys or changes infrastructure"));
    }
}

trait Pipe: Sized {
    fn pipe<T>(self, f: impl FnOnce(Self) -> T) -> T {
        f(self)
    }
}
impl<T> Pipe for T {}
