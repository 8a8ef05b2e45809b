#!/usr/bin/env python3
"""Generates activities/tests/redact_corpus.tsv: fake, format-valid secrets and look-alikes.

Every secret is random text in the shape of a real credential (prefix + random body), built
here by concatenation: none is a real key. The seed is fixed, so the output is reproducible:

    python3 scripts/gen-redact-corpus.py > activities/tests/redact_corpus.tsv

Columns (tab-separated): kind (`secret` or `lookalike`), type (the rule family expected),
text (newlines written as U+23CE), and for secrets the secret part that must not survive.
"""
import base64
import json
import random
import string
import sys
import uuid

R = random.Random(20261124)
NL = "\u23ce"

UP, LO, DG = string.ascii_uppercase, string.ascii_lowercase, string.digits


def pick(chars, n):
    return "".join(R.choice(chars) for _ in range(n))


def A(n):  # alphanumeric with at least one digit and one letter
    while True:
        s = pick(UP + LO + DG, n)
        if any(c.isdigit() for c in s) and any(c.isalpha() for c in s):
            return s


def AL(n): return pick(UP + LO, n)
def L(n): return pick(LO + DG, n)
def U(n): return pick(UP + DG, n)
def H(n): return pick("0123456789abcdef", n)
def D(n): return pick(DG, n)
def W(n): return A(n - 2) + pick("_-", 1) + pick(UP + LO + DG, 1) if n > 3 else A(n)
def B64(n): return pick(UP + LO + DG + "+/", n)
def UUID(): return str(uuid.UUID(int=R.getrandbits(128), version=4))
def PW(): return AL(4) + D(2) + pick("!@#%^*", 1) + A(6)


def cat(*parts):
    return "".join(parts)


# (type, generator of the token) for tokens recognisable by their own shape.
TOKENS = [
    ("ANTHROPIC_API_KEY", lambda: cat("sk-", "ant-api03-", W(93), "AA")),
    ("OPENAI_API_KEY", lambda: cat("sk-", "proj-", W(48), A(20))),
    ("OPENAI_API_KEY", lambda: cat("sk-", A(48))),
    ("HUGGINGFACE_TOKEN", lambda: cat("hf", "_", AL(34))),
    ("HUGGINGFACE_ORG_TOKEN", lambda: cat("api_org", "_", AL(34))),
    ("REPLICATE_API_TOKEN", lambda: cat("r8", "_", A(37))),
    ("GROQ_API_KEY", lambda: cat("gsk", "_", A(52))),
    ("PERPLEXITY_API_KEY", lambda: cat("pplx", "-", A(48))),
    ("XAI_API_KEY", lambda: cat("xai", "-", A(80))),
    ("NVIDIA_API_KEY", lambda: cat("nvapi", "-", W(64))),
    ("LANGSMITH_API_KEY", lambda: cat("lsv2", "_pt_", H(32), "_", H(10))),
    ("PINECONE_API_KEY", lambda: cat("pcsk", "_", A(6), "_", A(60))),
    ("ELEVENLABS_API_KEY", lambda: cat("sk", "_", H(48))),
    ("AWS_ACCESS_KEY", lambda: cat("AK", "IA", U(16))),
    ("AWS_ACCESS_KEY", lambda: cat("AS", "IA", U(16))),
    ("AWS_MWS_KEY", lambda: cat("amzn.", "mws.", UUID())),
    ("AWS_BEDROCK_API_KEY", lambda: cat("AB", "SK", B64(132))),
    ("GOOGLE_API_KEY", lambda: cat("AI", "za", W(35))),
    ("GOOGLE_OAUTH_CLIENT_SECRET", lambda: cat("GOC", "SPX-", W(28))),
    ("GOOGLE_OAUTH_TOKEN", lambda: cat("ya", "29.", W(120))),
    ("GOOGLE_REFRESH_TOKEN", lambda: cat("1//", "0", W(60))),
    ("AZURE_AD_CLIENT_SECRET", lambda: cat(A(3), D(1), "Q~", A(34))),
    ("DIGITALOCEAN_TOKEN", lambda: cat("dop", "_v1_", H(64))),
    ("DIGITALOCEAN_OAUTH_TOKEN", lambda: cat("doo", "_v1_", H(64))),
    ("DIGITALOCEAN_REFRESH_TOKEN", lambda: cat("dor", "_v1_", H(64))),
    ("ALIBABA_ACCESS_KEY", lambda: cat("LT", "AI", A(20))),
    ("HEROKU_API_KEY_V2", lambda: cat("HR", "KU-AA", W(58))),
    ("CLOUDFLARE_ORIGIN_CA_KEY", lambda: cat("v1.0-", H(24), "-", H(146))),
    ("FLYIO_TOKEN", lambda: cat("fo1", "_", W(43))),
    ("HASHICORP_TF_TOKEN", lambda: cat(A(14), ".atlas", "v1.", W(67))),
    ("VAULT_TOKEN", lambda: cat("hv", "s.", W(90))),
    ("VAULT_TOKEN", lambda: cat("hv", "b.", W(140))),
    ("PULUMI_TOKEN", lambda: cat("pul", "-", H(40))),
    ("SUPABASE_TOKEN", lambda: cat("sb", "p_", H(40))),
    ("PLANETSCALE_TOKEN", lambda: cat("pscale", "_tkn_", W(43))),
    ("PREFECT_API_KEY", lambda: cat("pn", "u_", A(36))),
    ("OPENSHIFT_TOKEN", lambda: cat("sha256", "~", W(43))),
    ("TAILSCALE_KEY", lambda: cat("tskey", "-auth-", A(12), "-", A(30))),
    ("DEFINED_NETWORKING_KEY", lambda: cat("dnkey", "-", L(26), "-", L(52))),
    ("INFRACOST_API_KEY", lambda: cat("ico", "-", A(32))),
    ("SCALINGO_TOKEN", lambda: cat("tk-us", "-", W(48))),
    ("YANDEX_API_KEY", lambda: cat("AQ", "VN", W(36))),
    ("OCTOPUS_DEPLOY_KEY", lambda: cat("API", "-", U(26))),
    ("GITHUB_TOKEN", lambda: cat("gh", "p_", A(36))),
    ("GITHUB_TOKEN", lambda: cat("gh", "o_", A(36))),
    ("GITHUB_TOKEN", lambda: cat("gh", "u_", A(36))),
    ("GITHUB_TOKEN", lambda: cat("gh", "s_", A(36))),
    ("GITHUB_TOKEN", lambda: cat("gh", "r_", A(36))),
    ("GITHUB_TOKEN", lambda: cat("github", "_pat_", A(22), "_", A(59))),
    ("GITLAB_PAT", lambda: cat("gl", "pat-", W(20))),
    ("GITLAB_DEPLOY_TOKEN", lambda: cat("gl", "dt-", W(20))),
    ("GITLAB_RUNNER_TOKEN", lambda: cat("gl", "rt-", W(20))),
    ("GITLAB_RUNNER_REGISTRATION_TOKEN", lambda: cat("GR13", "48941", W(20))),
    ("GITLAB_PIPELINE_TRIGGER_TOKEN", lambda: cat("gl", "ptt-", H(40))),
    ("GITLAB_CICD_JOB_TOKEN", lambda: cat("gl", "cbt-", W(20))),
    ("GITLAB_OAUTH_SECRET", lambda: cat("gl", "oas-", W(64))),
    ("GITLAB_SCIM_TOKEN", lambda: cat("gl", "soat-", W(20))),
    ("GITLAB_FEED_TOKEN", lambda: cat("gl", "ft-", W(20))),
    ("GITLAB_INCOMING_MAIL_TOKEN", lambda: cat("gl", "imt-", W(25))),
    ("GITLAB_AGENT_TOKEN", lambda: cat("gl", "agent-", W(50))),
    ("GITLAB_FEATURE_FLAG_TOKEN", lambda: cat("gl", "ffct-", W(20))),
    ("BITBUCKET_APP_PASSWORD", lambda: cat("AT", "BB", A(32))),
    ("ATLASSIAN_API_TOKEN", lambda: cat("ATA", "TT3", W(186))),
    ("SOURCEGRAPH_TOKEN", lambda: cat("sg", "p_", H(16), "_", H(40))),
    ("CIRCLECI_TOKEN", lambda: cat("CCI", "PAT_", A(22), "_", H(40))),
    ("BUILDKITE_TOKEN", lambda: cat("bk", "ua_", H(40))),
    ("SONAR_TOKEN", lambda: cat("sq", "u_", H(40))),
    ("HARNESS_PAT", lambda: cat("pat", ".", W(22), ".", H(24), ".", A(20))),
    ("NPM_TOKEN", lambda: cat("npm", "_", A(36))),
    ("PYPI_TOKEN", lambda: cat("pypi", "-AgEIcHlwaS5vcmc", W(70))),
    ("RUBYGEMS_TOKEN", lambda: cat("rubygems", "_", H(48))),
    ("NUGET_API_KEY", lambda: cat("oy", "2", L(43))),
    ("CRATES_IO_TOKEN", lambda: cat("ci", "o", A(32))),
    ("DOCKER_HUB_TOKEN", lambda: cat("dckr", "_pat_", W(27))),
    ("ARTIFACTORY_TOKEN", lambda: cat("AK", "Cp", A(69))),
    ("CLOJARS_TOKEN", lambda: cat("CLOJARS", "_", L(60))),
    ("STRIPE_KEY", lambda: cat("sk", "_live_", A(24))),
    ("STRIPE_KEY", lambda: cat("rk", "_live_", A(24))),
    ("STRIPE_WEBHOOK_SECRET", lambda: cat("wh", "sec_", A(32))),
    ("SQUARE_ACCESS_TOKEN", lambda: cat("sq0", "atp-", W(22))),
    ("SQUARE_ACCESS_TOKEN", lambda: cat("EA", "AA", W(60))),
    ("SQUARE_OAUTH_SECRET", lambda: cat("sq0", "csp-", W(43))),
    ("BRAINTREE_ACCESS_TOKEN", lambda: cat("access_token$", "production$", L(16), "$", H(32))),
    ("SHOPIFY_ACCESS_TOKEN", lambda: cat("shp", "at_", H(32))),
    ("SHOPIFY_CUSTOM_APP_TOKEN", lambda: cat("shp", "ca_", H(32))),
    ("SHOPIFY_PRIVATE_APP_TOKEN", lambda: cat("shp", "pa_", H(32))),
    ("SHOPIFY_SHARED_SECRET", lambda: cat("shp", "ss_", H(32))),
    ("RAZORPAY_KEY", lambda: cat("rzp", "_live_", A(14))),
    ("FLUTTERWAVE_KEY", lambda: cat("FLWSECK", "_TEST-", H(32), "-X")),
    ("FLUTTERWAVE_KEY", lambda: cat("FLWSECK", "-", H(32), "-X")),
    ("ADAFRUIT_IO_KEY", lambda: cat("aio", "_", A(28))),
    ("PLAID_ACCESS_TOKEN", lambda: cat("access-", "sandbox-", UUID())),
    ("DUFFEL_TOKEN", lambda: cat("duffel", "_test_", W(43))),
    ("EASYPOST_KEY", lambda: cat("EZ", "AK", A(54))),
    ("SHIPPO_TOKEN", lambda: cat("shippo", "_live_", H(40))),
    ("SLACK_TOKEN", lambda: cat("xo", "xb-", D(11), "-", D(13), "-", A(24))),
    ("SLACK_TOKEN", lambda: cat("xo", "xp-", D(11), "-", D(11), "-", D(13), "-", H(32))),
    ("SLACK_TOKEN", lambda: cat("xa", "pp-1-A", U(10), "-", D(13), "-", H(64))),
    ("TELEGRAM_BOT_TOKEN", lambda: cat(D(10), ":AA", W(33))),
    ("TWILIO_API_KEY", lambda: cat("S", "K", H(32))),
    ("SENDGRID_API_KEY", lambda: cat("SG", ".", W(22), ".", W(43))),
    ("MAILGUN_API_KEY", lambda: cat("key", "-", H(32))),
    ("MAILCHIMP_API_KEY", lambda: cat(H(32), "-us", D(2))),
    ("BREVO_API_KEY", lambda: cat("xkey", "sib-", H(64), "-", A(16))),
    ("FACEBOOK_ACCESS_TOKEN", lambda: cat("EA", "AG", A(150))),
    ("NEW_RELIC_KEY", lambda: cat("NR", "AK-", U(27))),
    ("NEW_RELIC_LICENSE_KEY", lambda: cat(H(36), "NR", "AL")),
    ("SENTRY_TOKEN", lambda: cat("sntry", "s_", B64(120))),
    ("SENTRY_TOKEN", lambda: cat("sntry", "u_", H(64))),
    ("GRAFANA_TOKEN", lambda: cat("gl", "c_", B64(80))),
    ("GRAFANA_TOKEN", lambda: cat("gl", "sa_", A(32), "_", H(8))),
    ("GRAFANA_API_KEY", lambda: cat("eyJr", "Ijoi", A(70))),
    ("DYNATRACE_TOKEN", lambda: cat("dt0c01", ".", U(24), ".", U(64))),
    ("HONEYBADGER_TOKEN", lambda: cat("hb", "p_", A(36))),
    ("LAUNCHDARKLY_KEY", lambda: cat("sdk", "-", UUID())),
    ("AXIOM_TOKEN", lambda: cat("xa", "at-", UUID())),
    ("LINEAR_API_KEY", lambda: cat("lin", "_api_", A(40))),
    ("NOTION_TOKEN", lambda: cat("nt", "n_", D(11), A(35))),
    ("NOTION_TOKEN", lambda: cat("sec", "ret_", A(43))),
    ("POSTMAN_API_KEY", lambda: cat("PM", "AK-", H(24), "-", H(34))),
    ("DATABRICKS_TOKEN", lambda: cat("da", "pi", H(32))),
    ("DOPPLER_TOKEN", lambda: cat("dp", ".pt.", A(43))),
    ("ONEPASSWORD_SECRET_KEY", lambda: cat("A3", "-", U(6), "-", U(11), "-", U(5), "-", U(5), "-", U(5))),
    ("ONEPASSWORD_SERVICE_TOKEN", lambda: cat("ops", "_eyJ", B64(300))),
    ("AGE_SECRET_KEY", lambda: cat("AGE-SECRET", "-KEY-1", pick("QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L", 58))),
    ("AIRTABLE_TOKEN", lambda: cat("pat", A(14), ".", H(64))),
    ("FIGMA_TOKEN", lambda: cat("fig", "d_", W(40))),
    ("HUBSPOT_TOKEN", lambda: cat("pat", "-na1-", UUID())),
    ("TYPEFORM_TOKEN", lambda: cat("tf", "p_", W(59))),
    ("ADOBE_CLIENT_SECRET", lambda: cat("p8", "e-", A(32))),
    ("CLICKUP_TOKEN", lambda: cat("pk", "_", D(8), "_", U(32))),
    ("MAPBOX_SECRET_TOKEN", lambda: cat("sk", ".eyJ", W(60), ".", W(22))),
    ("README_API_KEY", lambda: cat("rd", "me_", L(70))),
    ("MAXMIND_LICENSE_KEY", lambda: cat(A(6), "_", A(29), "_m", "mk")),
    ("JWT", lambda: cat("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9", ".",
                        base64.urlsafe_b64encode(json.dumps({"sub": D(8), "name": AL(6), "iat": int(D(10))}).encode()).decode().rstrip("="),
                        ".", W(43))),
]

# (type, template with {T} for the secret, generator) for secrets recognised by their key.
KEYED = [
    ("AWS_SECRET_KEY", "aws_secret_access_key = {T}", lambda: B64(40)),
    ("AWS_SECRET_KEY", "export AWS_SECRET_ACCESS_KEY={T}", lambda: B64(40)),
    ("AWS_SESSION_TOKEN", "AWS_SESSION_TOKEN={T}", lambda: "IQoJb3JpZ2luX2Vj" + B64(300)),
    ("GCP_SERVICE_ACCOUNT_KEY_ID", '  "private_key_id": "{T}",', lambda: H(40)),
    ("AZURE_STORAGE_KEY", "DefaultEndpointsProtocol=https;AccountName=acct1;AccountKey={T};EndpointSuffix=core.windows.net", lambda: B64(86) + "=="),
    ("AZURE_SHARED_ACCESS_KEY", "Endpoint=sb://ns1.servicebus.windows.net/;SharedAccessKeyName=Root;SharedAccessKey={T}", lambda: B64(43) + "="),
    ("AZURE_SAS_TOKEN", "https://acct1.blob.core.windows.net/c/f.txt?sv=2022-11-02&ss=b&srt=o&sp=r&sig={T}", lambda: B64(43) + "%3D"),
    ("ALIBABA_SECRET_KEY", "ALIBABA_CLOUD_ACCESS_KEY_SECRET={T}", lambda: A(30)),
    ("IBM_CLOUD_API_KEY", "IBM_CLOUD_API_KEY={T}", lambda: W(44)),
    ("HEROKU_API_KEY", "HEROKU_API_KEY={T}", UUID),
    ("LOB_API_KEY", "lob: {T}", lambda: "live_" + H(35)),
    ("LOB_API_KEY", "LOB_PUBLISHABLE={T}", lambda: "test_pub_" + H(31)),
    ("CLOUDFLARE_API_KEY", "CLOUDFLARE_API_TOKEN={T}", lambda: W(40)),
    ("FASTLY_API_TOKEN", "FASTLY_API_TOKEN={T}", lambda: W(32)),
    ("LINODE_TOKEN", "LINODE_TOKEN={T}", lambda: H(64)),
    ("SCALEWAY_SECRET_KEY", "SCW_SECRET_KEY={T}", UUID),
    ("VULTR_API_KEY", "VULTR_API_KEY={T}", lambda: U(36)),
    ("NETLIFY_TOKEN", "NETLIFY_AUTH_TOKEN={T}", lambda: W(43)),
    ("VERCEL_TOKEN", "VERCEL_TOKEN={T}", lambda: A(24)),
    ("BITBUCKET_CLIENT_SECRET", "BITBUCKET_CLIENT_SECRET={T}", lambda: W(32)),
    ("COHERE_API_KEY", "COHERE_API_KEY={T}", lambda: A(40)),
    ("MISTRAL_API_KEY", "MISTRAL_API_KEY={T}", lambda: A(32)),
    ("TWILIO_AUTH_TOKEN", "TWILIO_AUTH_TOKEN={T}", lambda: H(32)),
    ("DATADOG_API_KEY", "DD_API_KEY={T}", lambda: H(32)),
    ("DATADOG_API_KEY", "datadog_app_key: {T}", lambda: H(40)),
    ("OKTA_TOKEN", "OKTA_API_TOKEN={T}", lambda: "00" + W(40)),
    ("SNOWFLAKE_CREDENTIAL", "SNOWFLAKE_PASSWORD={T}", PW),
    ("PAYPAL_CLIENT_SECRET", "PAYPAL_CLIENT_SECRET={T}", lambda: W(80)),
    ("DISCORD_BOT_TOKEN", "DISCORD_BOT_TOKEN={T}", lambda: "MT" + A(24) + "." + W(6) + "." + W(38)),
    ("ALGOLIA_KEY", "ALGOLIA_ADMIN_KEY={T}", lambda: H(32)),
    ("POSTMARK_TOKEN", "POSTMARK_SERVER_TOKEN={T}", UUID),
    ("SPLUNK_HEC_TOKEN", "SPLUNK_HEC_TOKEN={T}", UUID),
    ("SNYK_TOKEN", "SNYK_TOKEN={T}", UUID),
    ("ROLLBAR_TOKEN", "ROLLBAR_ACCESS_TOKEN={T}", lambda: H(32)),
    ("PAGERDUTY_KEY", "PAGERDUTY_INTEGRATION_KEY={T}", lambda: A(32)),
    ("NPMRC_AUTH", "//registry.npmjs.org/:_authToken={T}", lambda: A(36)),
    ("DOCKER_CONFIG_AUTH", '{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{T}"}}}}}}', lambda: base64.b64encode(("user:" + PW()).encode()).decode()),
    ("XML_SECRET", "<password>{T}</password>", PW),
    ("SLACK_WEBHOOK", "https://hooks.slack.com/services/{T}", lambda: "T" + U(8) + "/B" + U(10) + "/" + A(24)),
    ("DISCORD_WEBHOOK", "https://discord.com/api/webhooks/{T}", lambda: D(18) + "/" + W(68)),
    ("MICROSOFT_TEAMS_WEBHOOK", "https://contoso.webhook.office.com/webhookb2/{T}", lambda: UUID() + "@" + UUID() + "/IncomingWebhook/" + H(32) + "/" + UUID()),
    ("SENTRY_DSN", "SENTRY_DSN=https://{T}@o123456.ingest.sentry.io/4505", lambda: H(32)),
    ("POSTGRES_CREDENTIALS", "DATABASE_URL=postgres://app:{T}@db.internal:5432/app", PW),
    ("POSTGRES_CREDENTIALS", "postgresql://admin:{T}@10.0.0.5/prod", lambda: A(16)),
    ("MYSQL_CREDENTIALS", "mysql://root:{T}@127.0.0.1:3306/shop", PW),
    ("MONGODB_CREDENTIALS", "mongodb+srv://svc:{T}@cluster0.ab1cd.mongodb.net/db", lambda: A(20)),
    ("MONGODB_CREDENTIALS", "mongodb://svc:{T}@mongo:27017", PW),
    ("REDIS_CREDENTIALS", "REDIS_URL=redis://:{T}@cache:6379/0", lambda: A(24)),
    ("AMQP_CREDENTIALS", "amqp://guest2:{T}@rabbit:5672/vhost", PW),
    ("JDBC_PASSWORD", "jdbc:sqlserver://db:1433;databaseName=app;user=sa;password={T};", PW),
    ("URL_CREDENTIALS", "https://deploy:{T}@git.internal.example/repo.git", lambda: A(20)),
    ("BASIC_AUTH", "Authorization: Basic {T}", lambda: base64.b64encode(("ci:" + PW()).encode()).decode()),
    ("BEARER_TOKEN", "curl -H 'Authorization: Bearer {T}' https://api.internal/v1", lambda: W(40)),
    ("AUTHORIZATION_HEADER", "Authorization: Token {T}", lambda: H(40)),
    ("CURL_CREDENTIALS", "curl -u admin:{T} https://jenkins.internal/api", PW),
    ("CLI_PASSWORD", "psql --password {T} -h db", PW),
    ("CLI_PASSWORD", "mysql -u root -p{T} shop", PW),
    ("CLI_PASSWORD", "vault login --token={T}", lambda: A(30)),
    ("CLI_PASSWORD", "docker login -u bot --password {T} registry.internal", PW),
    ("PASSWORD", "DB_PASSWORD={T}", PW),
    ("PASSWORD", '{{"password": "{T}"}}', PW),
    ("PASSWORD", "password: {T}", PW),
    ("PASSWORD", "SMTP_PASS={T}", PW),
    ("GENERIC_SECRET", "API_KEY={T}", lambda: A(32)),
    ("GENERIC_SECRET", '"client_secret": "{T}"', lambda: W(40)),
    ("GENERIC_SECRET", "x-api-key: {T}", lambda: A(40)),
    ("GENERIC_SECRET", "SIGNING_KEY={T}", lambda: B64(44)),
]


def pem(kind):
    body = NL.join(B64(64) for _ in range(6)) + NL + B64(20) + "=="
    return cat("-----BEGIN ", kind, "PRIVATE KEY-----", NL, body, NL, "-----END ", kind, "PRIVATE KEY-----")


MULTI = [
    ("PRIVATE_KEY", lambda: pem("RSA ")),
    ("PRIVATE_KEY", lambda: pem("EC ")),
    ("PRIVATE_KEY", lambda: pem("")),
    ("PRIVATE_KEY", lambda: pem("OPENSSH ")),
    ("PRIVATE_KEY", lambda: pem("ENCRYPTED ")),
    ("PRIVATE_KEY", lambda: cat("-----BEGIN PGP ", "PRIVATE KEY BLOCK-----", NL, NL, NL.join(B64(64) for _ in range(5)), NL, "=", B64(4), NL, "-----END PGP PRIVATE KEY BLOCK-----")),
    ("PUTTY_PRIVATE_KEY", lambda: cat("PuTTY-User-", "Key-File-3: ssh-ed25519", NL, "Encryption: none", NL, "Comment: ci", NL, "Public-Lines: 2", NL, B64(64), NL, B64(20), NL, "Private-Lines: 1", NL, B64(44), NL, "Private-MAC: ", H(64))),
]

CONTEXTS = [
    "{T}",
    "export SECRET_VALUE={T}",
    'config: {{"credential": "{T}"}}',
    "2026-11-24T07:00:00Z INFO uploading with {T} done",
    "  value: '{T}'",
]


def emit(kind, typ, text, secret=""):
    assert "\t" not in text and "\n" not in text
    print("\t".join([kind, typ, text, secret]))


def main():
    print("# kind\ttype\ttext (U+23CE = newline)\tsecret")
    n = 0
    for i, (typ, gen) in enumerate(TOKENS):
        for j in range(3):
            t = gen()
            ctx = CONTEXTS[(i + j) % len(CONTEXTS)]
            emit("secret", typ, ctx.replace("{T}", t), t)
            n += 1
    for typ, tmpl, gen in KEYED:
        for _ in range(2):
            t = gen()
            emit("secret", typ, tmpl.format(T=t), t)
            n += 1
    for typ, gen in MULTI:
        for ctx in ["{T}", "key:" + NL + "{T}" + NL + "done"]:
            t = gen()
            text = ctx.replace("{T}", t)
            # The body (not the BEGIN line) must not survive.
            emit("secret", typ, text, [ln for ln in t.split(NL)[1:] if ln][0] if typ == "PRIVATE_KEY" else t.split(NL)[-1])
            n += 1
    # A JSON service-account file keeps `\n` escaped inside one line.
    for _ in range(2):
        body = "\\n".join(B64(64) for _ in range(4))
        line = '{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----\\n' + body + '\\n-----END PRIVATE KEY-----\\n", "client_email": "ci@p.iam.gserviceaccount.com"}'
        emit("secret", "PRIVATE_KEY", line, body[:64])
        n += 1

    look = [
        "export API_KEY=${API_KEY}", "API_KEY=$API_KEY", "TOKEN=$TOKEN", "echo $TOKEN",
        "api_key: <your-key>", "OPENAI_API_KEY=<your-openai-key>", "password=changeme",
        "password: changeme", "DB_PASSWORD=${DB_PASSWORD}", "secret: xxxxxxxxxxxxxxxx",
        "token=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "API_KEY=your_api_key_here",
        "GITHUB_TOKEN=ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "AWS_ACCESS_KEY_ID=AKIAXXXXXXXXXXXXXXXX",
        "OPENAI_API_KEY=sk-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "stripe key sk_live_xxxxxxxxxxxxxxxxxxxxxxxx",
        "PASSWORD_MIN_LENGTH=8", "PASSWORD_MAX_LENGTH=128", "TOKEN_TTL=3600", "TOKEN_EXPIRY_SECONDS=86400",
        "MAX_TOKENS=4096", "max_tokens: 1024", "total_tokens: 123456789", "KEY_SIZE=2048",
        "API_KEY_FILE=/run/secrets/api_key", "PASSWORD_FILE=/run/secrets/db_password",
        "SECRET_NAME=prod-db-credentials", "password_reset_timeout: 900", "token_type: bearer",
        "require_password: true", "PASSWORD_HASH_ROUNDS=12", "JWT_EXPIRATION_MINUTES=15",
        "api_key = os.environ[\"API_KEY\"]", "token = os.getenv(\"GITHUB_TOKEN\")",
        "const apiKey = process.env.API_KEY;", "password: str", "secret_key = settings.SECRET_KEY",
        "token = authToken", "password = getPassword()", "if password == confirm_password:",
        "Password:", "Enter your password to continue", "password reset link sent",
        "the secret is out", "Bearer authentication is required", "Authorization: Bearer <token>",
        "Authorization: Bearer $TOKEN", "docker login --password-stdin", "mkdir -p build/out",
        "docker run -p 8080:80 nginx", "ssh -p 2222 deploy@host", "postgres://localhost:5432/app",
        "postgres://user:password@localhost:5432/db", "mysql://root:${MYSQL_ROOT_PASSWORD}@db/app",
        "redis://cache:6379/0", "ssh://git@github.com:22/org/repo.git", "mail user@example.com",
        "https://example.com/path?q=1&page=2", "scikit-learn and task-1234567890abc", "a risk-free plan",
        "npm WARN deprecated inflight@1.0.6", "Compiling regex-syntax v0.8.5",
        "Finished `release` profile [optimized] target(s) in 42.17s", "PWD=/home/me/project",
        "tokenizer: gpt2", "primary_key: id", "KEYCLOAK_URL=https://sso.internal",
        "secret: {{ .Values.secret }}", "token: ${{ secrets.GITHUB_TOKEN }}", "password: '********'",
        "api_key: null", "client_secret: ''", "--token-file /var/run/token", "AUTH_ENABLED=true",
        "SESSION_COOKIE_NAME=sid", "PUBLIC_KEY_PATH=/etc/keys/pub.pem", "-----BEGIN PUBLIC KEY-----",
        "-----BEGIN CERTIFICATE-----", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl ci@host",
        "the key to success is practice", "keyboard layout: us", "monkey=banana",
        "version: 1.2.3-beta.4", "image: nginx:1.25.3-alpine", "listening on 0.0.0.0:8080",
        "2026-11-24T07:00:00.123Z", "color: #ff8800", "mac 00:1a:2b:3c:4d:5e", "ip 192.168.10.254",
    ]
    for _ in range(8):
        look.append("request id " + UUID())
        look.append("commit " + H(40))
        look.append("HEAD is now at " + H(7) + " fix build")
        look.append("sha256:" + H(64))
        look.append(H(64) + "  dist/app.tar.gz")
        look.append('"integrity": "sha512-' + base64.b64encode(bytes(R.getrandbits(8) for _ in range(64))).decode() + '"')
        look.append("md5 " + H(32))
        look.append("image@sha256:" + H(64))
        look.append("build " + str(R.randint(1000, 99999)) + " finished in " + str(R.randint(1, 999)) + "ms")
    for t in look:
        emit("lookalike", "-", t)
    print(f"# {n} secrets over {len({t for t, _ in TOKENS} | {t for t, _, _ in KEYED} | {t for t, _ in MULTI})} types, {len(look)} look-alikes", file=sys.stderr)


if __name__ == "__main__":
    main()
