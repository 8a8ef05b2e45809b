//! `ae-worker policy check "<command>"` and `ae-worker policy test FILE`: the operator's view
//! of the command policy (the built-in rules plus `AE_POLICY_FILE`, or `--rules FILE`).

use ae_activities::policy::{Policy, PolicyContext, Profile, table};
use anyhow::{Context, bail};

/// `ae-worker policy …`
#[derive(clap::Subcommand, Debug)]
pub enum PolicyCommand {
    /// Print the decision for one command, the rule that decided and why.
    Check(CheckArgs),
    /// Run a table of commands with expected decisions; exit non-zero on any mismatch.
    Test(TestArgs),
    /// List the rules in force.
    Rules(RulesArgs),
}

#[derive(clap::Args, Debug)]
pub struct Common {
    /// A rules file to add to the built-in rules (default: $AE_POLICY_FILE).
    #[arg(long, env = "AE_POLICY_FILE")]
    pub rules: Option<std::path::PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// The shell command, as a workflow would send it.
    pub command: String,
    /// sandbox or production.
    #[arg(long, default_value = "sandbox", value_parser = ["sandbox", "production"])]
    pub profile: String,
    /// A workspace file the command will see (e.g. package.json, Makefile); repeatable.
    /// Its path relative to the current directory is its path in /workspace.
    #[arg(long = "file")]
    pub files: Vec<std::path::PathBuf>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(clap::Args, Debug)]
pub struct TestArgs {
    /// Lines of `EXPECT<TAB>COMMAND`; EXPECT is allow|approve|deny, optionally `:rule-id` and
    /// `@production`; `⏎` in COMMAND is a newline; `#` starts a comment line.
    pub file: std::path::PathBuf,
    /// Print every case, not only mismatches.
    #[arg(long, short)]
    pub verbose: bool,
    #[command(flatten)]
    pub common: Common,
}

#[derive(clap::Args, Debug)]
pub struct RulesArgs {
    #[command(flatten)]
    pub common: Common,
}

fn policy(c: &Common) -> anyhow::Result<Policy> {
    match &c.rules {
        Some(p) if !p.as_os_str().is_empty() => Policy::load(p).map_err(anyhow::Error::msg),
        _ => Ok(Policy::standard()),
    }
}

pub fn run(cmd: PolicyCommand) -> anyhow::Result<()> {
    match cmd {
        PolicyCommand::Check(a) => check(a),
        PolicyCommand::Test(a) => test(a),
        PolicyCommand::Rules(a) => {
            let p = policy(&a.common)?;
            for r in p.rules() {
                let envs: Vec<&str> = r.environments.iter().map(|e| e.as_str()).collect();
                println!(
                    "{:<28} {:<8} {:<20} {}{}",
                    r.id,
                    r.action.as_str(),
                    envs.join(","),
                    r.description,
                    if r.enabled { "" } else { " (disabled)" }
                );
            }
            Ok(())
        }
    }
}

fn check(a: CheckArgs) -> anyhow::Result<()> {
    let p = policy(&a.common)?;
    let profile = Profile::parse(&a.profile).unwrap_or_default();
    let mut texts = Vec::new();
    for f in &a.files {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?;
        texts.push((f.to_string_lossy().into_owned(), text));
    }
    let mut ctx = PolicyContext::new(profile);
    for (path, text) in &texts {
        ctx = ctx.with_file(path, text);
    }
    let d = p.check(&a.command, &ctx);
    println!("decision: {}", d.verdict());
    println!("profile:  {}", profile.as_str());
    println!("rule:     {}", d.rule.as_deref().unwrap_or("-"));
    println!("why:      {}", d.reason);
    let hits = p.explain(&a.command, &ctx);
    if hits.len() > 1 {
        println!("effects found:");
        for h in hits {
            println!("  {:<28} {}", h.rule, h.why);
        }
    }
    Ok(())
}

fn test(a: TestArgs) -> anyhow::Result<()> {
    let p = policy(&a.common)?;
    let text = std::fs::read_to_string(&a.file)
        .with_context(|| format!("cannot read {}", a.file.display()))?;
    let cases = table::parse(&text).map_err(anyhow::Error::msg)?;
    let mut failed = 0;
    for c in &cases {
        match table::run(&p, c) {
            Ok(d) => {
                if a.verbose {
                    println!(
                        "ok    line {:>4}: {} {:<26} {}",
                        c.line,
                        d.verdict(),
                        d.rule.as_deref().unwrap_or("-"),
                        c.command.replace('\n', "⏎")
                    );
                }
            }
            Err(d) => {
                failed += 1;
                println!(
                    "FAIL  line {:>4}: expected {}{}, got {} ({}): {}",
                    c.line,
                    c.expect,
                    c.rule
                        .as_deref()
                        .map(|r| format!(":{r}"))
                        .unwrap_or_default(),
                    d.verdict(),
                    d.rule.as_deref().unwrap_or("-"),
                    c.command.replace('\n', "⏎")
                );
            }
        }
    }
    println!("{} passed, {} failed", cases.len() - failed, failed);
    if failed > 0 {
        bail!("{failed} of {} policy cases did not match", cases.len());
    }
    Ok(())
}
