//! The built-in rule table: one entry per secret format, most specific first.
//!
//! Each rule names its type (the `TYPE` in `[REDACTED:TYPE]`), the keywords the prefilter looks
//! for (every match contains one of them, compared in lower, UPPER and Capitalised case unless
//! the keyword has capitals of its own), its regex (ASCII, bytes; a group named `s`, `dq`, `sq`
//! or `u` marks the secret part, otherwise the whole match is the secret) and the check that
//! keeps look-alikes intact. The families follow gitleaks' rule set; see the README.

use super::checks::Check;

pub(super) struct Spec {
    pub name: &'static str,
    pub keywords: Vec<&'static str>,
    pub pattern: String,
    pub check: Check,
    /// May span lines (private keys); everything else is matched within one line.
    pub multiline: bool,
}

/// The identifier characters of a key (`DB_PASSWORD`, `client.secret`).
const KEY: &str = r"[A-Za-z0-9_.-]*";

/// Between a key and its value: optional closing quote (also JSON-escaped), then `=`, `:`,
/// `:=`, `=>` or `?=`. Only spaces and tabs are skipped so a `Password:` prompt never eats the
/// next line.
const SEP: &str = r#"(?:\\?["'`])?[ \t]*(?::=|=>|\?=|[:=])[ \t]*"#;

/// A value after [`SEP`]: quoted (the inside is the secret) or bare up to whitespace, `&`, `;`,
/// `,`, a quote or a bracket. A bare value may start with an existing marker, so whatever
/// follows a marker is still redacted.
fn value(min: usize) -> String {
    let rest = min.saturating_sub(1);
    format!(
        r#"(?:\\?"(?P<dq>(?:[^"\\\r\n]|\\[^"\r\n]){{{min},}})\\?"|'(?P<sq>[^'\r\n]{{{min},}})'|(?P<u>\[REDACTED:[A-Z0-9_]+\][^\s&;,"'<>]*|[^\s&;,"'`\[{{=<>()][^\s&;,"'`<>]{{{rest},}}))"#
    )
}

/// For a pattern `{KEY}(?i:ALT){KEY}{SEP}` + [`value`] (the `PASSWORD` and `GENERIC_SECRET`
/// assignments), `(?i:ALT)` and the value's minimum length: the engine then scans these by hand
/// (see `kv`) instead of running the regex.
pub(super) fn key_sep_value(pattern: &str) -> Option<(String, usize)> {
    let rest = pattern.strip_prefix(KEY)?;
    if !rest.starts_with("(?i:") {
        return None;
    }
    [1, 8].into_iter().find_map(|m| {
        let alt = rest.strip_suffix(&format!("{KEY}{SEP}{}", value(m)))?;
        Some((alt.to_string(), m))
    })
}

/// `VENDOR..._KEY = value`: a vendor name, at most 30 identifier characters, a separator, an
/// optional quote, then the value (the secret).
fn kv(vendor: &str, val: &str) -> String {
    format!(r#"(?i:{vendor})[A-Za-z0-9_.-]{{0,30}}{SEP}["'`]?(?P<s>{val})(?:[^A-Za-z0-9_+/=.-]|$)"#)
}

const UUID: &str = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}";

/// Prefix token: `\bPREFIX` + body, ending at a non-token character.
fn tok(prefix: &str, body: &str) -> String {
    format!(r"\b{prefix}{body}\b")
}

pub(super) fn specs() -> Vec<Spec> {
    let mut v: Vec<Spec> = Vec::new();
    let mut add = |name: &'static str, kws: &[&'static str], pattern: String, check: Check| {
        v.push(Spec {
            name,
            keywords: kws.to_vec(),
            pattern,
            check,
            multiline: false,
        })
    };
    use Check::{Bearer, Generic, None as Plain, Password, Token, UrlCreds, Vendor};

    // ---- Private keys (multi-line; see below) are pushed last into `v` but get top priority
    // through `multiline_specs`.

    // ---- AI
    add(
        "ANTHROPIC_API_KEY",
        &["sk-ant-"],
        r"sk-ant-[A-Za-z0-9_-]{20,}".into(),
        Token,
    );
    add(
        "OPENAI_API_KEY",
        &["sk-"],
        r"\bsk-(?:[A-Za-z0-9_-]{20,}|[A-Za-z0-9]{10,}\b)".into(),
        Check::HasDigit,
    );
    add(
        "HUGGINGFACE_TOKEN",
        &["hf_"],
        tok("hf_", "[A-Za-z0-9]{30,40}"),
        Token,
    );
    add(
        "HUGGINGFACE_ORG_TOKEN",
        &["api_org_"],
        tok("api_org_", "[A-Za-z0-9]{30,40}"),
        Token,
    );
    add(
        "REPLICATE_API_TOKEN",
        &["r8_"],
        tok("r8_", "[A-Za-z0-9]{37}"),
        Token,
    );
    add(
        "GROQ_API_KEY",
        &["gsk_"],
        tok("gsk_", "[A-Za-z0-9]{48,56}"),
        Token,
    );
    add(
        "PERPLEXITY_API_KEY",
        &["pplx-"],
        tok("pplx-", "[A-Za-z0-9]{40,56}"),
        Token,
    );
    add(
        "XAI_API_KEY",
        &["xai-"],
        tok("xai-", "[A-Za-z0-9]{70,90}"),
        Token,
    );
    add(
        "NVIDIA_API_KEY",
        &["nvapi-"],
        tok("nvapi-", "[A-Za-z0-9_-]{60,70}"),
        Token,
    );
    add(
        "LANGSMITH_API_KEY",
        &["lsv2_"],
        tok("lsv2_", "(?:pt|sk)_[a-f0-9]{32}_[a-f0-9]{10}"),
        Token,
    );
    add(
        "PINECONE_API_KEY",
        &["pcsk_"],
        tok("pcsk_", "[A-Za-z0-9_]{40,}"),
        Token,
    );
    add(
        "COHERE_API_KEY",
        &["cohere", "co_api_key"],
        kv("cohere|co_api_key", "[A-Za-z0-9]{40}"),
        Vendor,
    );
    add(
        "MISTRAL_API_KEY",
        &["mistral"],
        kv("mistral", "[A-Za-z0-9]{32}"),
        Vendor,
    );
    add(
        "TOGETHER_API_KEY",
        &["together"],
        kv("together", "[A-Za-z0-9]{40,64}"),
        Vendor,
    );
    add(
        "ELEVENLABS_API_KEY",
        &["sk_", "elevenlabs", "xi-api-key"],
        tok("sk_", "[a-f0-9]{48}"),
        Token,
    );

    // ---- Cloud
    add(
        "AWS_ACCESS_KEY",
        &[
            "akia", "asia", "abia", "acca", "agpa", "aida", "aroa", "aipa", "anpa", "anva", "apka",
            "a3t",
        ],
        r"\b(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|APKA)[0-9A-Z]{16}\b"
            .into(),
        Token,
    );
    add(
        "AWS_SECRET_KEY",
        &["secret"],
        format!(
            r#"(?i:{KEY}(?:aws{KEY}secret|secret{KEY}access){KEY}){SEP}["']?(?P<s>[A-Za-z0-9/+=]{{40}})(?:[^A-Za-z0-9/+=]|$)"#
        ),
        Token,
    );
    add(
        "AWS_SESSION_TOKEN",
        &[
            "session_token",
            "sessiontoken",
            "session-token",
            "security-token",
            "security_token",
        ],
        format!(
            r#"(?i:{KEY}(?:session[_-]?token|security[_-]token){KEY}){SEP}["']?(?P<s>[A-Za-z0-9/+=]{{100,}})"#
        ),
        Token,
    );
    add(
        "AWS_MWS_KEY",
        &["amzn.mws."],
        format!(r"amzn\.mws\.{UUID}"),
        Token,
    );
    add(
        "AWS_BEDROCK_API_KEY",
        &["absk"],
        r"\bABSK[A-Za-z0-9+/]{100,300}={0,2}".into(),
        Token,
    );
    add(
        "GOOGLE_API_KEY",
        &["AIza"],
        r"AIza[0-9A-Za-z_-]{35}".into(),
        Token,
    );
    add(
        "GCP_SERVICE_ACCOUNT_KEY_ID",
        &["private_key_id"],
        r#""private_key_id"[ \t]*:[ \t]*"(?P<s>[a-f0-9]{40})""#.into(),
        Token,
    );
    add(
        "GOOGLE_OAUTH_CLIENT_SECRET",
        &["gocspx-"],
        tok("GOCSPX-", "[A-Za-z0-9_-]{28}"),
        Token,
    );
    add(
        "GOOGLE_OAUTH_TOKEN",
        &["ya29."],
        r"\bya29\.[0-9A-Za-z_-]{20,}".into(),
        Token,
    );
    add(
        "GOOGLE_REFRESH_TOKEN",
        &["1//0"],
        r"\b1//0[0-9A-Za-z_-]{40,}".into(),
        Token,
    );
    add(
        "AZURE_STORAGE_KEY",
        &["accountkey"],
        r"(?i:AccountKey)[ \t]*=[ \t]*(?P<s>[A-Za-z0-9+/]{86}==)".into(),
        Token,
    );
    add(
        "AZURE_SHARED_ACCESS_KEY",
        &["sharedaccesskey"],
        r"(?i:SharedAccessKey)[ \t]*=[ \t]*(?P<s>[A-Za-z0-9+/]{42,44}=?)".into(),
        Token,
    );
    add(
        "AZURE_SAS_TOKEN",
        &["sig="],
        r"[?&;]sig=(?P<s>[A-Za-z0-9%+/]{30,}(?:%3D|=){0,2})".into(),
        Token,
    );
    add("AZURE_AD_CLIENT_SECRET", &["q~"], r"(?:^|[^A-Za-z0-9_~.-])(?P<s>[A-Za-z0-9_~.]{3}\dQ~[A-Za-z0-9_~.-]{31,34})(?:[^A-Za-z0-9_~.-]|$)".into(), Token);
    add(
        "AZURE_DEVOPS_PAT",
        &["azure", "devops", "ado_"],
        kv("azure[_.-]?devops|ado|azdo", "[a-z2-7]{52}"),
        Vendor,
    );
    add(
        "AZURE_OPENAI_KEY",
        &["azure"],
        kv("azure[_.-]?openai", "[a-f0-9]{32}"),
        Vendor,
    );
    add(
        "DIGITALOCEAN_TOKEN",
        &["dop_v1_"],
        tok("dop_v1_", "[a-f0-9]{64}"),
        Token,
    );
    add(
        "DIGITALOCEAN_OAUTH_TOKEN",
        &["doo_v1_"],
        tok("doo_v1_", "[a-f0-9]{64}"),
        Token,
    );
    add(
        "DIGITALOCEAN_REFRESH_TOKEN",
        &["dor_v1_"],
        tok("dor_v1_", "[a-f0-9]{64}"),
        Token,
    );
    add(
        "DIGITALOCEAN_SPACES_KEY",
        &["spaces"],
        kv("spaces[_.-]?secret", "[A-Za-z0-9/+]{43}"),
        Vendor,
    );
    add(
        "ALIBABA_ACCESS_KEY",
        &["ltai"],
        tok("LTAI", "[A-Za-z0-9]{17,21}"),
        Token,
    );
    add(
        "ALIBABA_SECRET_KEY",
        &["alibaba", "aliyun"],
        kv("alibaba|aliyun", "[A-Za-z0-9]{30}"),
        Vendor,
    );
    add(
        "IBM_CLOUD_API_KEY",
        &["ibm", "bluemix"],
        kv("ibm|bluemix", "[A-Za-z0-9_-]{44}"),
        Vendor,
    );
    add("HEROKU_API_KEY", &["heroku"], kv("heroku", UUID), Vendor);
    add(
        "HEROKU_API_KEY_V2",
        &["hrku-"],
        tok("HRKU-", "[A-Za-z0-9_-]{58,64}"),
        Token,
    );
    add(
        "CLOUDFLARE_API_KEY",
        &["cloudflare", "cf_api"],
        kv("cloudflare|cf_api", "[A-Za-z0-9_-]{37,40}"),
        Vendor,
    );
    add(
        "CLOUDFLARE_ORIGIN_CA_KEY",
        &["v1.0-"],
        r"\bv1\.0-[a-f0-9]{24}-[a-f0-9]{146}".into(),
        Token,
    );
    add(
        "FASTLY_API_TOKEN",
        &["fastly"],
        kv("fastly", "[A-Za-z0-9=_-]{32}"),
        Vendor,
    );
    add(
        "LINODE_TOKEN",
        &["linode"],
        kv("linode", "[a-f0-9]{64}"),
        Vendor,
    );
    add(
        "SCALEWAY_SECRET_KEY",
        &["scw", "scaleway"],
        kv("scw|scaleway", UUID),
        Vendor,
    );
    add(
        "FLYIO_TOKEN",
        &["fo1_", "FlyV1"],
        r"\b(?:fo1_[A-Za-z0-9_-]{43}|FlyV1 fm\d+_[A-Za-z0-9+/=_,-]{100,})".into(),
        Token,
    );
    add(
        "VULTR_API_KEY",
        &["vultr"],
        kv("vultr", "[A-Z0-9]{36}"),
        Vendor,
    );
    add(
        "HASHICORP_TF_TOKEN",
        &["atlasv1"],
        r"\b[A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9_=-]{60,70}".into(),
        Token,
    );
    add(
        "VAULT_TOKEN",
        &["hvs.", "hvb.", "hvr."],
        r"\bhv[sbr]\.[A-Za-z0-9_-]{24,}".into(),
        Token,
    );
    add(
        "PULUMI_TOKEN",
        &["pul-"],
        tok("pul-", "[a-f0-9]{40}"),
        Token,
    );
    add(
        "NETLIFY_TOKEN",
        &["netlify"],
        kv("netlify", "[A-Za-z0-9=_-]{40,46}"),
        Vendor,
    );
    add(
        "VERCEL_TOKEN",
        &["vercel"],
        kv("vercel", "[A-Za-z0-9]{24}"),
        Vendor,
    );
    add(
        "SUPABASE_TOKEN",
        &["sbp_", "sb_secret_"],
        r"\b(?:sbp_[a-f0-9]{40}|sb_secret_[A-Za-z0-9_-]{20,})\b".into(),
        Token,
    );
    add(
        "PLANETSCALE_TOKEN",
        &["pscale_"],
        r"\bpscale_(?:tkn|pw|oauth)_[A-Za-z0-9_=.-]{32,64}".into(),
        Token,
    );
    add(
        "PREFECT_API_KEY",
        &["pnu_"],
        tok("pnu_", "[A-Za-z0-9]{36}"),
        Token,
    );
    add(
        "OPENSHIFT_TOKEN",
        &["sha256~"],
        r"\bsha256~[A-Za-z0-9_-]{43}".into(),
        Token,
    );
    add(
        "TAILSCALE_KEY",
        &["tskey-"],
        r"\btskey-(?:api|auth|client|webhook|scim)-[A-Za-z0-9]+-[A-Za-z0-9]{20,}".into(),
        Token,
    );
    add(
        "DEFINED_NETWORKING_KEY",
        &["dnkey-"],
        r"\bdnkey-[a-z0-9=_-]{26}-[a-z0-9=_-]{52}".into(),
        Token,
    );
    add(
        "INFRACOST_API_KEY",
        &["ico-"],
        tok("ico-", "[A-Za-z0-9]{32}"),
        Token,
    );
    add(
        "SCALINGO_TOKEN",
        &["tk-us-"],
        tok("tk-us-", "[A-Za-z0-9_-]{48}"),
        Token,
    );
    add(
        "YANDEX_API_KEY",
        &["aqvn"],
        tok("AQVN", "[A-Za-z0-9_-]{35,38}"),
        Token,
    );
    add(
        "YANDEX_AWS_ACCESS_TOKEN",
        &["YC"],
        tok("YC", "[A-Za-z0-9_-]{38}"),
        Token,
    );
    add(
        "OCTOPUS_DEPLOY_KEY",
        &["API-"],
        tok("API-", "[A-Z0-9]{26}"),
        Token,
    );
    add(
        "KUBERNETES_SA_TOKEN",
        &["kube", "k8s"],
        kv(
            "kube[A-Za-z0-9_.-]{0,20}token|k8s[A-Za-z0-9_.-]{0,20}token",
            "[A-Za-z0-9_.-]{20,}",
        ),
        Vendor,
    );

    // ---- Source hosting and CI
    add(
        "GITHUB_TOKEN",
        &["ghp_", "gho_", "ghu_", "ghs_", "ghr_"],
        r"\bgh[pousr]_[A-Za-z0-9]{36,}".into(),
        Token,
    );
    add(
        "GITHUB_TOKEN",
        &["github_pat_"],
        r"\bgithub_pat_[A-Za-z0-9_]{22,}".into(),
        Token,
    );
    add(
        "GITLAB_PAT",
        &["glpat-"],
        r"\bglpat-[A-Za-z0-9_.-]{20,}".into(),
        Token,
    );
    add(
        "GITLAB_DEPLOY_TOKEN",
        &["gldt-"],
        r"\bgldt-[A-Za-z0-9_-]{20,}".into(),
        Token,
    );
    add(
        "GITLAB_RUNNER_TOKEN",
        &["glrt-"],
        r"\bglrt-[A-Za-z0-9_.-]{20,}".into(),
        Token,
    );
    add(
        "GITLAB_RUNNER_REGISTRATION_TOKEN",
        &["GR1348941"],
        r"\bGR1348941[A-Za-z0-9_-]{20,}".into(),
        Token,
    );
    add(
        "GITLAB_PIPELINE_TRIGGER_TOKEN",
        &["glptt-"],
        r"\bglptt-[A-Za-z0-9_-]{20,}".into(),
        Token,
    );
    add(
        "GITLAB_CICD_JOB_TOKEN",
        &["glcbt-"],
        r"\bglcbt-[A-Za-z0-9_-]{20,}".into(),
        Token,
    );
    add(
        "GITLAB_OAUTH_SECRET",
        &["gloas-"],
        r"\bgloas-[A-Za-z0-9_-]{20,}".into(),
        Token,
    );
    add(
        "GITLAB_SCIM_TOKEN",
        &["glsoat-"],
        r"\bglsoat-[A-Za-z0-9_-]{20,}".into(),
        Token,
    );
    add(
        "GITLAB_FEED_TOKEN",
        &["glft-"],
        r"\bglft-[A-Za-z0-9_-]{20,}".into(),
        Token,
    );
    add(
        "GITLAB_INCOMING_MAIL_TOKEN",
        &["glimt-"],
        r"\bglimt-[A-Za-z0-9_-]{20,}".into(),
        Token,
    );
    add(
        "GITLAB_AGENT_TOKEN",
        &["glagent-"],
        r"\bglagent-[A-Za-z0-9_-]{40,}".into(),
        Token,
    );
    add(
        "GITLAB_FEATURE_FLAG_TOKEN",
        &["glffct-"],
        r"\bglffct-[A-Za-z0-9_-]{20,}".into(),
        Token,
    );
    add(
        "BITBUCKET_APP_PASSWORD",
        &["atbb"],
        tok("ATBB", "[A-Za-z0-9_=.-]{28,}"),
        Token,
    );
    add(
        "BITBUCKET_CLIENT_SECRET",
        &["bitbucket"],
        kv("bitbucket", "[A-Za-z0-9=_-]{32,64}"),
        Vendor,
    );
    add(
        "ATLASSIAN_API_TOKEN",
        &["atatt3", "atctt3"],
        r"\bAT[AC]TT3[A-Za-z0-9_=-]{100,}".into(),
        Token,
    );
    add(
        "ATLASSIAN_API_TOKEN",
        &["atlassian", "confluence", "jira"],
        kv("atlassian|confluence|jira", "[A-Za-z0-9]{24}"),
        Vendor,
    );
    add(
        "SOURCEGRAPH_TOKEN",
        &["sgp_"],
        r"\bsgp_(?:[a-fA-F0-9]{16}_)?[a-fA-F0-9]{40}\b".into(),
        Token,
    );
    add(
        "CIRCLECI_TOKEN",
        &["ccipat_"],
        r"\bCCIPAT_[A-Za-z0-9]{22}_[a-f0-9]{40}\b".into(),
        Token,
    );
    add(
        "BUILDKITE_TOKEN",
        &["bkua_"],
        tok("bkua_", "[a-f0-9]{40}"),
        Token,
    );
    add(
        "TRAVIS_TOKEN",
        &["travis"],
        kv("travis", "[A-Za-z0-9_-]{22}"),
        Vendor,
    );
    add(
        "SONAR_TOKEN",
        &["squ_", "sqp_", "sqa_"],
        r"\bsq[upa]_[a-f0-9]{40}\b".into(),
        Token,
    );
    add("SNYK_TOKEN", &["snyk"], kv("snyk", UUID), Vendor);
    add("CODECOV_TOKEN", &["codecov"], kv("codecov", UUID), Vendor);
    add(
        "HARNESS_PAT",
        &["pat."],
        r"\bpat\.[A-Za-z0-9_-]{22}\.[a-f0-9]{24}\.[A-Za-z0-9]{20}\b".into(),
        Token,
    );
    add(
        "DRONE_TOKEN",
        &["drone"],
        kv("drone", "[A-Za-z0-9]{32}"),
        Vendor,
    );

    // ---- Package registries
    add(
        "NPM_TOKEN",
        &["npm_"],
        tok("npm_", "[A-Za-z0-9]{36}"),
        Token,
    );
    add(
        "NPMRC_AUTH",
        &["_auth"],
        r#"(?i:_authToken|_auth|_password)[ \t]*=[ \t]*["']?(?P<s>[A-Za-z0-9+/=_.:-]{8,})"#.into(),
        Generic,
    );
    add(
        "PYPI_TOKEN",
        &["pypi-AgE"],
        r"\bpypi-AgE[A-Za-z0-9_-]{50,}".into(),
        Token,
    );
    add(
        "RUBYGEMS_TOKEN",
        &["rubygems_"],
        tok("rubygems_", "[a-f0-9]{48}"),
        Token,
    );
    add("NUGET_API_KEY", &["oy2"], tok("oy2", "[a-z0-9]{43}"), Token);
    add(
        "CRATES_IO_TOKEN",
        &["cio"],
        tok("cio", "[A-Za-z0-9]{32}"),
        Check::HasDigit,
    );
    add(
        "DOCKER_HUB_TOKEN",
        &["dckr_pat_", "dckr_oat_"],
        r"\bdckr_(?:pat|oat)_[A-Za-z0-9_-]{20,}".into(),
        Token,
    );
    add(
        "DOCKER_CONFIG_AUTH",
        &["\"auth\"", "identitytoken"],
        r#""(?i:auth|identitytoken)"[ \t]*:[ \t]*"(?P<s>[A-Za-z0-9+/=_.-]{8,})""#.into(),
        Token,
    );
    add(
        "ARTIFACTORY_TOKEN",
        &["AKCp", "cmVmdGtu"],
        r"\b(?:AKCp[A-Za-z0-9]{69}|cmVmdGtu[A-Za-z0-9]{56})\b".into(),
        Token,
    );
    add(
        "CLOJARS_TOKEN",
        &["clojars_"],
        tok("CLOJARS_", "[a-z0-9]{60}"),
        Token,
    );
    add(
        "GRADLE_PUBLISH_KEY",
        &["gradle"],
        kv("gradle\\.publish\\.(?:key|secret)", "[A-Za-z0-9]{32}"),
        Vendor,
    );
    add(
        "HEX_PM_KEY",
        &["hex_api_key", "hexpm"],
        kv("hex_api_key|hexpm", "[a-f0-9]{32}"),
        Vendor,
    );
    add(
        "PACKAGIST_TOKEN",
        &["packagist"],
        kv("packagist", "[A-Za-z0-9]{20,}"),
        Vendor,
    );
    add("XML_SECRET", &["password>", "secret>", "token>", "apikey>", "api_key>", "passphrase>"],
        r"<(?i:password|passwd|secret|token|apikey|api_key|api-key|passphrase|privatekey)>(?P<s>[^<\s]{3,})</".into(), Password);

    // ---- Payments and commerce
    add(
        "STRIPE_KEY",
        &[
            "sk_live_", "sk_test_", "rk_live_", "rk_test_", "pk_live_", "pk_test_",
        ],
        r"\b(?:sk|rk|pk)_(?:live|test)_[0-9A-Za-z]{16,}".into(),
        Token,
    );
    add(
        "STRIPE_WEBHOOK_SECRET",
        &["whsec_"],
        tok("whsec_", "[A-Za-z0-9+/=]{32,}"),
        Token,
    );
    add(
        "SQUARE_ACCESS_TOKEN",
        &["sq0atp-", "EAAA"],
        r"\b(?:sq0atp-[A-Za-z0-9_-]{22}|EAAA[A-Za-z0-9_-]{56,64})\b".into(),
        Token,
    );
    add(
        "SQUARE_OAUTH_SECRET",
        &["sq0csp-"],
        tok("sq0csp-", "[A-Za-z0-9_-]{43}"),
        Token,
    );
    add(
        "BRAINTREE_ACCESS_TOKEN",
        &["access_token$"],
        r"access_token\$(?:production|sandbox)\$[0-9a-z]{16}\$[0-9a-f]{32}".into(),
        Token,
    );
    add(
        "PAYPAL_CLIENT_SECRET",
        &["paypal"],
        kv("paypal", "[A-Za-z0-9_-]{60,90}"),
        Vendor,
    );
    add(
        "SHOPIFY_ACCESS_TOKEN",
        &["shpat_"],
        tok("shpat_", "[a-fA-F0-9]{32}"),
        Token,
    );
    add(
        "SHOPIFY_CUSTOM_APP_TOKEN",
        &["shpca_"],
        tok("shpca_", "[a-fA-F0-9]{32}"),
        Token,
    );
    add(
        "SHOPIFY_PRIVATE_APP_TOKEN",
        &["shppa_"],
        tok("shppa_", "[a-fA-F0-9]{32}"),
        Token,
    );
    add(
        "SHOPIFY_SHARED_SECRET",
        &["shpss_"],
        tok("shpss_", "[a-fA-F0-9]{32}"),
        Token,
    );
    add(
        "RAZORPAY_KEY",
        &["rzp_"],
        tok("rzp_(?:live|test)_", "[A-Za-z0-9]{14}"),
        Token,
    );
    add(
        "FLUTTERWAVE_KEY",
        &["flwseck", "flwpubk"],
        r"\bFLW(?:SECK|PUBK)(?:_TEST-?|-)[a-hA-H0-9]{12,32}(?:-X)?".into(),
        Token,
    );
    add(
        "LOB_API_KEY",
        &["lob"],
        kv("lob", "(?:live|test)(?:_pub)?_[a-f0-9]{31,35}"),
        Check::HasDigit,
    );
    add(
        "PLAID_ACCESS_TOKEN",
        &[
            "access-sandbox-",
            "access-development-",
            "access-production-",
        ],
        format!(r"\baccess-(?:sandbox|development|production)-{UUID}"),
        Token,
    );
    add(
        "PLAID_SECRET",
        &["plaid"],
        kv("plaid", "[a-f0-9]{30}"),
        Vendor,
    );
    add(
        "GOCARDLESS_TOKEN",
        &["live_"],
        r"\blive_[A-Za-z0-9_=-]{40}\b".into(),
        Check::HasDigit,
    );
    add(
        "DUFFEL_TOKEN",
        &["duffel_"],
        r"\bduffel_(?:test|live)_[A-Za-z0-9_=-]{43}".into(),
        Token,
    );
    add(
        "EASYPOST_KEY",
        &["ezak", "eztk"],
        r"\bEZ[AT]K[a-zA-Z0-9]{54}\b".into(),
        Token,
    );
    add(
        "SHIPPO_TOKEN",
        &["shippo_"],
        r"\bshippo_(?:live|test)_[a-f0-9]{40}\b".into(),
        Token,
    );
    add(
        "COINBASE_KEY",
        &["coinbase"],
        kv("coinbase", "[A-Za-z0-9_-]{32,64}"),
        Vendor,
    );
    add(
        "KRAKEN_KEY",
        &["kraken"],
        kv("kraken", "[A-Za-z0-9/=_+-]{80,90}"),
        Vendor,
    );
    add(
        "ADYEN_API_KEY",
        &["aqe"],
        tok("AQE", "[A-Za-z0-9_.+/=-]{90,}"),
        Token,
    );

    // ---- Messaging and mail
    add(
        "SLACK_TOKEN",
        &["xox"],
        r"\bxox[abposre]-[0-9A-Za-z-]{10,}".into(),
        Token,
    );
    add(
        "SLACK_TOKEN",
        &["xapp-"],
        r"\bxapp-\d-[A-Z0-9]+-\d+-[a-z0-9]+".into(),
        Token,
    );
    add(
        "SLACK_TOKEN",
        &["xoxe."],
        r"\bxoxe\.xox[bp]-\d-[A-Za-z0-9]{100,}".into(),
        Token,
    );
    add(
        "SLACK_WEBHOOK",
        &["hooks.slack.com"],
        r"hooks\.slack\.com/(?:services|workflows|triggers)/(?P<s>[A-Za-z0-9_/+-]{8,})".into(),
        Token,
    );
    add(
        "DISCORD_WEBHOOK",
        &["discord"],
        r"discord(?:app)?\.com/api/webhooks/(?P<s>\d+/[A-Za-z0-9_-]{40,80})".into(),
        Token,
    );
    add(
        "DISCORD_BOT_TOKEN",
        &["discord"],
        kv(
            "discord",
            r"[MNO][A-Za-z0-9_-]{23,27}\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27,40}",
        ),
        Token,
    );
    add(
        "DISCORD_CLIENT_SECRET",
        &["discord"],
        kv("discord", "[a-fA-F0-9]{64}|[A-Za-z0-9_-]{32}"),
        Vendor,
    );
    add(
        "TELEGRAM_BOT_TOKEN",
        &[":AA"],
        r"\b\d{5,16}:AA[A-Za-z0-9_-]{32,33}\b".into(),
        Token,
    );
    add(
        "TWILIO_API_KEY",
        &["SK"],
        tok("SK", "[0-9a-fA-F]{32}"),
        Check::HasDigit,
    );
    add(
        "TWILIO_AUTH_TOKEN",
        &["twilio"],
        kv("twilio", "[a-f0-9]{32}"),
        Vendor,
    );
    add(
        "SENDGRID_API_KEY",
        &["SG."],
        r"\bSG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}\b".into(),
        Token,
    );
    add(
        "MAILGUN_API_KEY",
        &["key-"],
        tok("key-", "[a-f0-9]{32}"),
        Token,
    );
    add(
        "MAILGUN_PUBLIC_KEY",
        &["pubkey-"],
        tok("pubkey-", "[a-f0-9]{32}"),
        Token,
    );
    add(
        "MAILGUN_SIGNING_KEY",
        &["mailgun"],
        kv("mailgun", "[a-h0-9]{32}-[a-h0-9]{8}-[a-h0-9]{8}"),
        Vendor,
    );
    add(
        "MAILCHIMP_API_KEY",
        &["-us"],
        r"\b[0-9a-f]{32}-us\d{1,2}\b".into(),
        Token,
    );
    add(
        "MANDRILL_API_KEY",
        &["mandrill"],
        kv("mandrill", "[A-Za-z0-9_-]{22}"),
        Vendor,
    );
    add(
        "BREVO_API_KEY",
        &["xkeysib-", "xsmtpsib-"],
        r"\bx(?:keysib|smtpsib)-[a-f0-9]{64}-[A-Za-z0-9]{16}\b".into(),
        Token,
    );
    add(
        "POSTMARK_TOKEN",
        &["postmark"],
        kv("postmark", UUID),
        Vendor,
    );
    add(
        "MAILJET_KEY",
        &["mailjet"],
        kv("mailjet", "[a-f0-9]{32}"),
        Vendor,
    );
    add(
        "MICROSOFT_TEAMS_WEBHOOK",
        &["webhook.office.com"],
        r"webhook\.office\.com/webhookb2/(?P<s>[A-Za-z0-9@/_-]{40,})".into(),
        Token,
    );
    add(
        "MATTERMOST_TOKEN",
        &["mattermost"],
        kv("mattermost", "[a-z0-9]{26}"),
        Vendor,
    );
    add(
        "ZENDESK_TOKEN",
        &["zendesk"],
        kv("zendesk", "[A-Za-z0-9]{40}"),
        Vendor,
    );
    add(
        "INTERCOM_TOKEN",
        &["intercom"],
        kv("intercom", "[A-Za-z0-9=_-]{60}"),
        Vendor,
    );
    add(
        "SENDBIRD_TOKEN",
        &["sendbird"],
        kv("sendbird", "[a-f0-9]{40}"),
        Vendor,
    );
    add(
        "MESSAGEBIRD_KEY",
        &["messagebird", "message_bird", "message-bird"],
        kv("message[_-]?bird", "[A-Za-z0-9]{25}"),
        Vendor,
    );
    add(
        "TWITTER_BEARER_TOKEN",
        &["aaaaaaaaaaaaaaaaaaaaaa"],
        r"\bA{22}[A-Za-z0-9%]{80,}".into(),
        Plain,
    );
    add(
        "TWITTER_SECRET",
        &["twitter"],
        kv("twitter", "[A-Za-z0-9]{35,50}"),
        Vendor,
    );
    add(
        "FACEBOOK_ACCESS_TOKEN",
        &["EAAC", "EAAG", "EAAM"],
        r"\bEAA[CGM][A-Za-z0-9]{100,}".into(),
        Token,
    );
    add(
        "FACEBOOK_SECRET",
        &["facebook"],
        kv("facebook", "[a-f0-9]{32}"),
        Vendor,
    );
    add(
        "LINKEDIN_SECRET",
        &["linkedin"],
        kv("linkedin", "[A-Za-z0-9]{16}"),
        Vendor,
    );
    add(
        "TWITCH_TOKEN",
        &["twitch"],
        kv("twitch", "[a-z0-9]{30}"),
        Vendor,
    );

    // ---- Observability
    add(
        "DATADOG_API_KEY",
        &["datadog", "dd_api", "dd_app", "dd-api", "dd-app"],
        kv("datadog|dd[_-]api|dd[_-]app", "[a-f0-9]{32,40}"),
        Vendor,
    );
    add(
        "NEW_RELIC_KEY",
        &["nrak-", "nrjs-", "nrii-"],
        r"\b(?:NRAK-[A-Z0-9]{27}|NRJS-[a-f0-9]{19}|NRII-[A-Za-z0-9_-]{32})\b".into(),
        Token,
    );
    add(
        "NEW_RELIC_LICENSE_KEY",
        &["nral"],
        r"\b[a-f0-9]{36}NRAL\b".into(),
        Token,
    );
    add(
        "SENTRY_TOKEN",
        &["sntrys_", "sntryu_"],
        r"\b(?:sntrys_[A-Za-z0-9+/=_]{50,}|sntryu_[a-f0-9]{64})".into(),
        Token,
    );
    add(
        "SENTRY_DSN",
        &["sentry", "ingest"],
        r"https?://(?P<s>[a-f0-9]{32})@[A-Za-z0-9.-]*(?:sentry|ingest)".into(),
        Token,
    );
    add(
        "GRAFANA_TOKEN",
        &["glc_", "glsa_"],
        r"\b(?:glc_[A-Za-z0-9+/]{32,400}={0,2}|glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8})".into(),
        Token,
    );
    add(
        "GRAFANA_API_KEY",
        &["eyJrIjoi"],
        r"\beyJrIjoi[A-Za-z0-9]{50,400}={0,2}".into(),
        Token,
    );
    add(
        "DYNATRACE_TOKEN",
        &["dt0c01."],
        r"\bdt0c01\.[A-Z0-9]{24}\.[A-Z0-9]{64}\b".into(),
        Token,
    );
    add(
        "HONEYCOMB_KEY",
        &["honeycomb"],
        kv("honeycomb", "[A-Za-z0-9]{22,64}"),
        Vendor,
    );
    add(
        "HONEYBADGER_TOKEN",
        &["hbp_"],
        tok("hbp_", "[A-Za-z0-9]{36}"),
        Token,
    );
    add(
        "SUMOLOGIC_KEY",
        &["sumo"],
        kv("sumo", "[A-Za-z0-9]{64}|su[A-Za-z0-9]{12}"),
        Vendor,
    );
    add(
        "SPLUNK_HEC_TOKEN",
        &["splunk", "hec_token"],
        kv("splunk|hec", UUID),
        Vendor,
    );
    add(
        "ROLLBAR_TOKEN",
        &["rollbar"],
        kv("rollbar", "[a-f0-9]{32}"),
        Vendor,
    );
    add(
        "BUGSNAG_KEY",
        &["bugsnag"],
        kv("bugsnag", "[a-f0-9]{32}"),
        Vendor,
    );
    add(
        "PAGERDUTY_KEY",
        &["pagerduty", "pager_duty"],
        kv("pager[_-]?duty", "[A-Za-z0-9_+-]{20,32}"),
        Vendor,
    );
    add("OPSGENIE_KEY", &["opsgenie"], kv("opsgenie", UUID), Vendor);
    add(
        "LAUNCHDARKLY_KEY",
        &["launchdarkly", "sdk-", "api-", "mob-"],
        format!(r"\b(?:sdk|api|mob)-{UUID}"),
        Token,
    );
    add(
        "AXIOM_TOKEN",
        &["xaat-", "xapt-"],
        format!(r"\bxa[ap]t-{UUID}"),
        Token,
    );
    add(
        "ELASTIC_API_KEY",
        &["elastic"],
        kv("elastic", "[A-Za-z0-9_=-]{40,100}"),
        Vendor,
    );
    add(
        "LOGDNA_KEY",
        &["logdna", "mezmo"],
        kv("logdna|mezmo", "[a-f0-9]{32}"),
        Vendor,
    );

    // ---- SaaS
    add(
        "LINEAR_API_KEY",
        &["lin_api_"],
        tok("lin_api_", "[A-Za-z0-9]{40}"),
        Token,
    );
    add(
        "LINEAR_CLIENT_SECRET",
        &["linear"],
        kv("linear", "[a-f0-9]{32}"),
        Vendor,
    );
    add(
        "NOTION_TOKEN",
        &["secret_", "ntn_"],
        r"\b(?:secret_[A-Za-z0-9]{43}|ntn_[0-9]{11}[A-Za-z0-9]{35})\b".into(),
        Token,
    );
    add(
        "POSTMAN_API_KEY",
        &["pmak-"],
        r"\bPMAK-[a-f0-9]{24}-[a-f0-9]{34}\b".into(),
        Token,
    );
    add(
        "OKTA_TOKEN",
        &["okta"],
        kv("okta", "00[A-Za-z0-9=_-]{40}"),
        Vendor,
    );
    add(
        "AUTH0_SECRET",
        &["auth0"],
        kv("auth0", "[A-Za-z0-9_-]{32,64}"),
        Vendor,
    );
    add(
        "DATABRICKS_TOKEN",
        &["dapi", "dose"],
        r"\bd(?:api|ose)[a-f0-9]{32}(?:-\d)?\b".into(),
        Token,
    );
    add(
        "SNOWFLAKE_CREDENTIAL",
        &["snowflake"],
        kv(
            "snowflake[A-Za-z0-9_.-]{0,20}(?:password|pwd|token|secret|passphrase)",
            "[^\\s\"'`&;,]{6,}",
        ),
        Vendor,
    );
    add(
        "DOPPLER_TOKEN",
        &[
            "dp.pt.",
            "dp.st.",
            "dp.sa.",
            "dp.ct.",
            "dp.scim.",
            "dp.audit.",
        ],
        r"\bdp\.(?:pt|st|sa|ct|scim|audit)\.[A-Za-z0-9]{40,44}\b".into(),
        Token,
    );
    add("ONEPASSWORD_SECRET_KEY", &["a3-"], r"\bA3-[A-Z0-9]{6}-(?:[A-Z0-9]{11}|[A-Z0-9]{6}-[A-Z0-9]{5})-[A-Z0-9]{5}-[A-Z0-9]{5}-[A-Z0-9]{5}\b".into(), Token);
    add(
        "ONEPASSWORD_SERVICE_TOKEN",
        &["ops_eyJ"],
        r"\bops_eyJ[A-Za-z0-9+/]{250,}={0,3}".into(),
        Token,
    );
    add(
        "AGE_SECRET_KEY",
        &["age-secret-key-1"],
        r"AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}".into(),
        Token,
    );
    add(
        "AIRTABLE_TOKEN",
        &["pat"],
        r"\bpat[A-Za-z0-9]{14}\.[a-f0-9]{64}\b".into(),
        Token,
    );
    add(
        "AIRTABLE_API_KEY",
        &["airtable"],
        kv("airtable", "key[A-Za-z0-9]{14}"),
        Vendor,
    );
    add(
        "ASANA_TOKEN",
        &["asana"],
        kv("asana", r"[0-9]/[0-9]{16}:[a-f0-9]{32}|[0-9]{16}"),
        Vendor,
    );
    add(
        "CONTENTFUL_TOKEN",
        &["contentful", "cfpat-"],
        r"\bCFPAT-[A-Za-z0-9_-]{43}\b".into(),
        Token,
    );
    add(
        "DROPBOX_TOKEN",
        &["sl."],
        r"\bsl\.[A-Za-z0-9_-]{130,}".into(),
        Token,
    );
    add(
        "DROPBOX_API_KEY",
        &["dropbox"],
        kv(
            "dropbox",
            "[a-z0-9]{15}|[A-Za-z0-9_=-]{43}|[a-z0-9]{11}AAAAAAAAAA[A-Za-z0-9_=-]{43}",
        ),
        Vendor,
    );
    add(
        "ADAFRUIT_IO_KEY",
        &["aio_"],
        tok("aio_", "[A-Za-z0-9]{28}"),
        Check::HasDigit,
    );
    add(
        "FIGMA_TOKEN",
        &["figd_"],
        tok("figd_", "[A-Za-z0-9_-]{40}"),
        Token,
    );
    add(
        "FRAMEIO_TOKEN",
        &["fio-u-"],
        tok("fio-u-", "[A-Za-z0-9_=-]{64}"),
        Token,
    );
    add(
        "HUBSPOT_TOKEN",
        &["pat-na1-", "pat-eu1-"],
        format!(r"\bpat-(?:na1|eu1)-{UUID}"),
        Token,
    );
    add("HUBSPOT_API_KEY", &["hubspot"], kv("hubspot", UUID), Vendor);
    add(
        "TYPEFORM_TOKEN",
        &["tfp_"],
        tok("tfp_", "[A-Za-z0-9_.=-]{59}"),
        Token,
    );
    add(
        "ADOBE_CLIENT_SECRET",
        &["p8e-"],
        tok("p8e-", "[A-Za-z0-9]{32}"),
        Token,
    );
    add(
        "CLICKUP_TOKEN",
        &["pk_"],
        r"\bpk_[0-9]{6,8}_[0-9A-Z]{32}\b".into(),
        Token,
    );
    add(
        "MAPBOX_SECRET_TOKEN",
        &["sk.eyJ"],
        r"\bsk\.eyJ[A-Za-z0-9_-]{50,}\.[A-Za-z0-9_-]{20,}".into(),
        Token,
    );
    add(
        "ALGOLIA_KEY",
        &["algolia"],
        kv("algolia", "[a-f0-9]{32}"),
        Vendor,
    );
    add(
        "README_API_KEY",
        &["rdme_"],
        tok("rdme_", "[a-z0-9]{70}"),
        Token,
    );
    add(
        "SETTLEMINT_TOKEN",
        &["sm_pat_", "sm_aat_", "sm_sat_"],
        r"\bsm_(?:pat|aat|sat)_[A-Za-z0-9]{16}\b".into(),
        Token,
    );
    add(
        "MAXMIND_LICENSE_KEY",
        &["_mmk"],
        r"\b[A-Za-z0-9]{6}_[A-Za-z0-9]{29}_mmk\b".into(),
        Token,
    );
    add(
        "SIDEKIQ_SECRET",
        &["contribsys"],
        r"(?i:contribsys)[A-Za-z0-9_.]*[ \t]*[=:][ \t]*(?P<s>[a-f0-9]{8}:[a-f0-9]{8})".into(),
        Token,
    );
    add(
        "NGROK_TOKEN",
        &["ngrok"],
        kv("ngrok", "[A-Za-z0-9_]{40,50}"),
        Vendor,
    );
    add(
        "TRELLO_TOKEN",
        &["trello"],
        kv("trello", "[a-zA-Z0-9]{32,64}"),
        Vendor,
    );
    add(
        "ZOOM_SECRET",
        &["zoom"],
        kv("zoom", "[A-Za-z0-9_-]{32}"),
        Vendor,
    );
    add(
        "FIREBASE_KEY",
        &["firebase", "fcm"],
        kv("firebase|fcm", "AAAA[A-Za-z0-9_-]{7}:[A-Za-z0-9_-]{140}"),
        Vendor,
    );
    add(
        "SQUARESPACE_TOKEN",
        &["squarespace"],
        kv("squarespace", UUID),
        Vendor,
    );
    add("ETSY_TOKEN", &["etsy"], kv("etsy", "[a-z0-9]{24}"), Vendor);
    add(
        "FRESHBOOKS_TOKEN",
        &["freshbooks"],
        kv("freshbooks", "[a-z0-9]{64}"),
        Vendor,
    );
    add(
        "GITTER_TOKEN",
        &["gitter"],
        kv("gitter", "[a-z0-9_-]{40}"),
        Vendor,
    );
    add(
        "FINNHUB_TOKEN",
        &["finnhub"],
        kv("finnhub", "[a-z0-9]{20}"),
        Vendor,
    );
    add(
        "NYTIMES_TOKEN",
        &["nytimes", "new-york-times", "newyorktimes"],
        kv("nytimes|new-york-times|newyorktimes", "[A-Za-z0-9=_-]{32}"),
        Vendor,
    );
    add(
        "EASYPOST_KEY",
        &["easypost"],
        kv("easypost", "[A-Za-z0-9]{22,60}"),
        Vendor,
    );
    add(
        "JWT",
        &["eyJ"],
        r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}".into(),
        Token,
    );
    add(
        "JWT",
        &["ZXlK"],
        r"\bZXlK[A-Za-z0-9+/]{20,}\.?[A-Za-z0-9+/=]*".into(),
        Token,
    );

    // ---- Connection strings: the `user:password` part (the user may be empty). A `#` in the
    // password is taken as part of it, as drivers do, not as the start of a fragment.
    add(
        "POSTGRES_CREDENTIALS",
        &["postgres"],
        r#"\bpostgres(?:ql)?(?:\+[a-z0-9]+)?://(?P<s>[^\s:/?#@\[\]"'<>]*:[^\s/?\[\]"'<>]+)@"#
            .into(),
        UrlCreds,
    );
    add(
        "MYSQL_CREDENTIALS",
        &["mysql", "mariadb"],
        r#"\b(?:mysql|mariadb)(?:\+[a-z0-9]+)?://(?P<s>[^\s:/?#@\[\]"'<>]*:[^\s/?\[\]"'<>]+)@"#
            .into(),
        UrlCreds,
    );
    add(
        "MONGODB_CREDENTIALS",
        &["mongodb"],
        r#"\bmongodb(?:\+srv)?://(?P<s>[^\s:/?#@\[\]"'<>]*:[^\s/?\[\]"'<>]+)@"#.into(),
        UrlCreds,
    );
    add(
        "REDIS_CREDENTIALS",
        &["redis"],
        r#"\brediss?://(?P<s>[^\s:/?#@\[\]"'<>]*:[^\s/?\[\]"'<>]+)@"#.into(),
        UrlCreds,
    );
    add(
        "AMQP_CREDENTIALS",
        &["amqp"],
        r#"\bamqps?://(?P<s>[^\s:/?#@\[\]"'<>]*:[^\s/?\[\]"'<>]+)@"#.into(),
        UrlCreds,
    );
    add(
        "JDBC_PASSWORD",
        &["jdbc:"],
        r"jdbc:[A-Za-z0-9]+:[^\s]*?[;?&:](?i:password|pwd)=(?P<s>[^;&\s]+)".into(),
        Password,
    );
    add(
        "URL_CREDENTIALS",
        &["://"],
        r#"\b[A-Za-z][A-Za-z0-9+.-]*://(?P<s>[^\s:/?#@\[\]"'<>]*:[^\s/?\[\]"'<>]+)@"#.into(),
        UrlCreds,
    );

    // ---- Headers and command lines
    add(
        "BASIC_AUTH",
        &["authorization"],
        format!(r#"(?i:authorization){SEP}["']?(?i:basic)[ \t]+(?P<s>[A-Za-z0-9+/=]{{6,}})"#),
        Token,
    );
    add(
        "BEARER_TOKEN",
        &["bearer"],
        r"\b(?i:bearer)[ \t]+(?P<s>[A-Za-z0-9._~+/=-]{8,})".into(),
        Bearer,
    );
    add(
        "AUTHORIZATION_HEADER",
        &["authorization"],
        format!(
            r#"(?i:authorization){SEP}["']?(?:[A-Za-z][A-Za-z0-9_-]*[ \t]+)?(?P<s>[^\s"'][^\r\n"']{{5,}})"#
        ),
        Bearer,
    );
    add(
        "CURL_CREDENTIALS",
        &["curl"],
        r#"\bcurl\b[^\r\n]*?[ \t](?:-u|--user)[ \t]*["']?(?P<s>[^\s:"']+:[^\s"']+)"#.into(),
        UrlCreds,
    );
    add("CLI_PASSWORD", &["-pass", "-token", "-secret", "-api"],
        r#"(?:^|[ \t"'])--(?:[A-Za-z0-9]+-)*(?i:password|passwd|pass|token|secret|api-key|apikey|auth-token|access-token|client-secret|secret-key)(?:=|[ \t]+)(?:\\?"(?P<dq>[^"\r\n]{1,})\\?"|'(?P<sq>[^'\r\n]{1,})'|(?P<u>[^\s"'`&;|<>][^\s"'`;|<>]*))"#.into(), Password);
    add("CLI_PASSWORD", &["mysql", "mariadb"], r#"\b(?:mysql|mysqldump|mysqladmin|mysqlimport|mysqlsh|mariadb)\b[^\r\n|;&]*?[ \t]-p(?P<s>[^\s"'-][^\s"']*)"#.into(), Password);
    add("CLI_PASSWORD", &["sshpass", "redis-cli", "docker login"], r#"\b(?:sshpass|redis-cli|docker login)\b[^\r\n|;&]*?[ \t]-[pa][ \t]*(?P<s>[^\s"'-][^\s"']*)"#.into(), Password);
    add(
        "PASSWORD",
        &["pass", "pwd"],
        format!(r"{KEY}(?i:pass|pwd){KEY}{SEP}{}", value(1)),
        Password,
    );
    add(
        "GENERIC_SECRET",
        &["secret", "token", "key", "credential"],
        format!(
            r"{KEY}(?i:api[_-]?key|secret|token|access[_-]?key|private[_-]?key|credentials?|(?:master|signing|sign|encryption|encrypt|license|licence|client|app|admin|service|account|session|webhook|deploy|sdk|write|read|ingest|server|shared|consumer|hmac|jwt|aes|cipher|enc|root|auth|rest|bot|integration)[_.-]?key){KEY}{SEP}{}",
            value(8)
        ),
        Generic,
    );
    v
}

/// Rules that span lines. They run first: a key block swallows everything inside it.
pub(super) fn multiline_specs() -> Vec<Spec> {
    vec![
        Spec {
            name: "PRIVATE_KEY",
            keywords: vec!["-----BEGIN", "---- BEGIN SSH2"],
            // Through the END line, or through the end of the text when a stream was cut: a
            // truncated key body must not leak. `\n` may be literal (`\\n` in JSON).
            pattern: r"(?s)-----BEGIN[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----.*?(?:-----END[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----|\z)|---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----.*?(?:---- END SSH2 ENCRYPTED PRIVATE KEY ----|\z)".into(),
            check: Check::None,
            multiline: true,
        },
        Spec {
            name: "PUTTY_PRIVATE_KEY",
            keywords: vec!["PuTTY-User-Key-File-"],
            pattern: r"(?s)PuTTY-User-Key-File-\d+:.*?(?:Private-MAC: [0-9a-fA-F]+|\z)".into(),
            check: Check::None,
            multiline: true,
        },
    ]
}
