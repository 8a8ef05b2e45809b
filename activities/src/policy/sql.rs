//! SQL sent to a database: normalised (comments, quoting, concatenation, case) before
//! matching, so `DROP/**/TABLE` and `'DR' || 'OP TABLE'` are the same statement. Only text
//! that reaches a database client or an interpreter is checked; text that merely mentions
//! SQL (commit messages, grep patterns, files written by echo) never is.

use std::sync::LazyLock;

use regex::Regex;

use super::analyze::{Analyzer, Field, Flow, State, Taint};
use super::effects::operands;

fn re(p: &str) -> Regex {
    Regex::new(p).expect("built-in regex")
}

static BLOCK_COMMENT: LazyLock<Regex> = LazyLock::new(|| re(r"(?s)/\*.*?\*/"));
static LINE_COMMENT: LazyLock<Regex> = LazyLock::new(|| re(r"--[^\n]*"));
static CONCAT: LazyLock<Regex> =
    LazyLock::new(|| re(r#"['"`]\s*(\|\||\+|,)\s*['"`]|CONCAT\s*\(|CHAR\s*\(\s*\d+\s*\)"#));
static DROP: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"\bDROP\s+(TEMPORARY\s+)?(TABLE|DATABASE|SCHEMA|COLLECTION|KEYSPACE|TABLESPACE|OWNED|MATERIALIZED\s+VIEW)\b|\bALTER\s+TABLE\s+\S+\s+DROP\s+(COLUMN|PARTITION)\b|\bDROPDATABASE\b|\bDB\.DROPDATABASE|\.DROP\s*\(\s*\)|\bFLUSHALL\b|\bFLUSHDB\b",
    )
});
static TRUNCATE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"\bTRUNCATE\s+(TABLE\s+)?(ONLY\s+)?[\w.]|\.DELETEMANY\s*\(\s*\{\s*\}\s*\)|\.REMOVE\s*\(\s*\{\s*\}\s*\)",
    )
});
static DELETE: LazyLock<Regex> = LazyLock::new(|| re(r"(^|[^\w])DELETE\s+(FROM\s+)?[\w.]+"));
static UPDATE: LazyLock<Regex> = LazyLock::new(|| re(r"(^|[^\w])UPDATE\s+[\w.]+\s+SET\b"));
static WHERE: LazyLock<Regex> = LazyLock::new(|| re(r"\bWHERE\b"));
static GRANT: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"\b(GRANT|REVOKE)\s+\w|\b(CREATE|ALTER|DROP)\s+(ROLE|USER|GROUP|LOGIN)\b|\bSET\s+PASSWORD\b|\bALTER\s+DEFAULT\s+PRIVILEGES\b",
    )
});
static AUTH_TABLE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"\b(UPDATE|ALTER\s+TABLE)\s+[\w.]*(USER|ACCOUNT|AUTH|ROLE|PERMISSION|CREDENTIAL|PASSWORD|ADMIN|API_KEY|MFA|OTP)S?\w*\b|\bINSERT\s+INTO\s+[\w.]*(ROLE|PERMISSION|ADMIN|GRANT|ACL)S?\w*\b|\bSET\s+[\w.]*(PASSWORD|ROLE|IS_ADMIN|IS_SUPERUSER|MFA\w*|OTP\w*)\s*=",
    )
});
static SECURITY: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"\bDISABLE\s+ROW\s+LEVEL\s+SECURITY\b|\bNO\s+FORCE\s+ROW\s+LEVEL\s+SECURITY\b|\bDROP\s+POLICY\b|\bALTER\s+TABLE\s+\S+\s+DROP\s+CONSTRAINT\b|\bDISABLE\s+TRIGGER\b|\bBYPASSRLS\b|\bSET\s+SESSION_REPLICATION_ROLE\s*=\s*REPLICA\b",
    )
});
static AUDIT: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"\b(DROP\s+(TRIGGER|TABLE|FUNCTION|EXTENSION)(\s+IF\s+EXISTS)?\s+[\w.]*AUDIT|DELETE\s+FROM\s+[\w.]*AUDIT|TRUNCATE\s+(TABLE\s+)?[\w.]*AUDIT|DISABLE\s+TRIGGER\s+[\w.]*AUDIT|ALTER\s+TABLE\s+[\w.]*AUDIT\w*\s+DISABLE)",
    )
});

/// Whether a statement's WHERE clause is always true (`WHERE 1=1`, `WHERE TRUE`,
/// `WHERE x = x`, `… OR 1=1`).
fn always_true(stmt: &str) -> bool {
    let Some(pos) = stmt
        .find(" WHERE ")
        .map(|p| p + 7)
        .or_else(|| stmt.find("WHERE ").map(|p| p + 6))
    else {
        return false;
    };
    let cond = stmt[pos..].trim().trim_end_matches(';');
    let cond = cond.split(" RETURNING ").next().unwrap_or(cond).trim();
    let trivially = |c: &str| {
        let c = c.trim().trim_matches(|ch| ch == '(' || ch == ')').trim();
        if matches!(c, "TRUE" | "1" | "NOT FALSE" | "NOT 0") {
            return true;
        }
        for op in ["<>", "!=", "="] {
            if let Some((l, r)) = c.split_once(op) {
                let (l, r) = (l.trim(), r.trim());
                if op == "=" && l == r && !l.is_empty() {
                    return true;
                }
                if op != "=" && l.parse::<i64>().is_ok() && r.parse::<i64>().is_ok() && l != r {
                    return true;
                }
            }
        }
        c.ends_with(" IS NOT NULL OR ") || c.contains(" LIKE %") && c.ends_with("LIKE %")
    };
    trivially(cond) || cond.split(" OR ").skip(1).any(trivially)
}

/// Normalises SQL for matching.
pub fn normalise(sql: &str) -> String {
    let s = BLOCK_COMMENT.replace_all(sql, " ");
    let s = LINE_COMMENT.replace_all(&s, " ");
    let s = CONCAT.replace_all(&s, "");
    let upper = s.to_uppercase();
    // String literals are data, unless the SQL executes strings.
    let dynamic = [
        "EXECUTE",
        "EXEC ",
        "PREPARE",
        "SP_EXECUTESQL",
        "DBMS_SQL",
        "EVAL",
        "QUERY_TO_XML",
        "DBLINK",
    ]
    .iter()
    .any(|k| upper.contains(k));
    let mut out = String::with_capacity(s.len());
    let mut in_str = false;
    for c in s.chars() {
        match c {
            '\'' => {
                in_str = !in_str;
                if !dynamic && in_str {
                    out.push('S');
                }
            }
            '"' | '`' | '[' | ']' => {}
            c if in_str && !dynamic => {
                let _ = c;
            }
            c => out.push(c),
        }
    }
    let s = out;
    let up = s.to_uppercase();
    up.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Checks SQL text sent to a database. `strict`: the text is known to be SQL.
pub fn check_sql(az: &mut Analyzer<'_>, text: &str, strict: bool) {
    let n = normalise(text);
    if !strict
        && ![
            "DROP", "TRUNCATE", "DELETE", "UPDATE", "GRANT", "REVOKE", "ALTER", "FLUSH", "CREATE",
            "DISABLE", "INSERT", "SET", "REMOVE",
        ]
        .iter()
        .any(|k| n.contains(k))
    {
        return;
    }
    if AUDIT.is_match(&n) {
        az.hit("audit-log-removal", "SQL removes audit logging");
    }
    if DROP.is_match(&n) {
        az.hit("sql-drop", "SQL DROP of a table, database or schema");
    }
    if TRUNCATE.is_match(&n) {
        az.hit("sql-truncate", "SQL TRUNCATE of a table");
    }
    for stmt in n.split(';') {
        let stmt = stmt.trim();
        if stmt.contains("ON DELETE") || stmt.contains("ON UPDATE") {
            continue;
        }
        if DELETE.is_match(stmt) && (!WHERE.is_match(stmt) || always_true(stmt)) {
            az.hit(
                "sql-delete-without-where",
                "SQL DELETE without a (real) WHERE clause",
            );
        }
        if UPDATE.is_match(stmt) && (!WHERE.is_match(stmt) || always_true(stmt)) {
            az.hit("sql-update-without-where", "SQL UPDATE of every row");
        }
    }
    if GRANT.is_match(&n) {
        az.hit(
            "permission-change",
            "SQL changes roles, users or privileges",
        );
    }
    if SECURITY.is_match(&n) {
        az.hit(
            "security-feature-change",
            "SQL disables row-level security, policies, constraints or triggers",
        );
    }
    if strict && AUTH_TABLE.is_match(&n) {
        az.hit(
            "auth-table-change",
            "SQL modifies an authentication, user or role table",
        );
    }
}

/// A database client or migration tool: the SQL it is given and its own destructive verbs.
pub fn client(az: &mut Analyzer<'_>, st: &mut State, n: &str, args: &[Field], input: &Flow) {
    let a: Vec<&str> = args.iter().map(|f| f.s.as_str()).collect();
    let has = |w: &str| a.iter().any(|x| x.eq_ignore_ascii_case(w));
    // Destructive verbs of tools.
    let drop_verb = match n {
        "dropdb" => true,
        "mysqladmin" => has("drop"),
        "rails" | "rake" => a.iter().any(|x| {
            matches!(
                *x,
                "db:drop"
                    | "db:reset"
                    | "db:purge"
                    | "db:schema:load"
                    | "db:drop:all"
                    | "db:truncate_all"
            )
        }),
        "manage.py" | "django-admin" => a
            .iter()
            .any(|x| matches!(*x, "flush" | "reset_db" | "sqlflush")),
        "prisma" => {
            a.windows(2).any(|w| w[0] == "migrate" && w[1] == "reset")
                || (a.windows(2).any(|w| w[0] == "db" && w[1] == "push") && has("--force-reset"))
        }
        "supabase" => a.windows(2).any(|w| w[0] == "db" && w[1] == "reset") && has("--linked"),
        "sequelize" => a
            .iter()
            .any(|x| matches!(*x, "db:drop" | "db:migrate:undo:all")),
        "typeorm" => has("schema:drop"),
        "drizzle-kit" => has("drop"),
        "knex" => has("migrate:rollback") && has("--all"),
        "artisan" => a
            .iter()
            .any(|x| matches!(*x, "db:wipe" | "migrate:fresh" | "migrate:reset")),
        "mix" | "ecto" => a.iter().any(|x| matches!(*x, "ecto.drop" | "ecto.reset")),
        "flyway" => has("clean"),
        "liquibase" => has("dropAll") || has("drop-all"),
        "redis-cli" | "valkey-cli" | "keydb-cli" => a
            .iter()
            .any(|x| x.eq_ignore_ascii_case("flushall") || x.eq_ignore_ascii_case("flushdb")),
        "diesel" | "sqlx" => a
            .windows(2)
            .any(|w| w[0] == "database" && (w[1] == "reset" || w[1] == "drop")),
        "atlas" => a.windows(2).any(|w| w[0] == "schema" && w[1] == "clean"),
        _ => false,
    };
    if drop_verb {
        az.hit("sql-drop", format!("{n} drops or wipes a database"));
    }
    // Migrations applied to production need approval (production profile only).
    let migrate = match n {
        "rails" | "rake" => a.iter().any(|x| x.starts_with("db:migrate")),
        "manage.py" | "django-admin" => has("migrate"),
        "prisma" => {
            a.windows(2).any(|w| w[0] == "migrate" && w[1] == "deploy")
                || a.windows(2).any(|w| w[0] == "db" && w[1] == "push")
        }
        "alembic" => has("upgrade") || has("downgrade"),
        "knex" => a.iter().any(|x| x.starts_with("migrate:")),
        "sequelize" => a.iter().any(|x| x.starts_with("db:migrate")),
        "typeorm" => has("migration:run") || has("migration:revert"),
        "flyway" | "liquibase" => has("migrate") || has("update"),
        "migrate" | "dbmate" | "goose" | "sqitch" => {
            has("up") || has("down") || has("deploy") || has("migrate")
        }
        "atlas" => {
            a.windows(2).any(|w| w[0] == "migrate" && w[1] == "apply")
                || a.windows(2).any(|w| w[0] == "schema" && w[1] == "apply")
        }
        "supabase" => a.windows(2).any(|w| w[0] == "db" && w[1] == "push"),
        "artisan" => has("migrate"),
        "diesel" | "sqlx" => {
            a.windows(2).any(|w| w[0] == "migration" && w[1] == "run")
                || a.windows(2).any(|w| w[0] == "migrate" && w[1] == "run")
        }
        _ => false,
    };
    if migrate {
        az.hit("db-migrate", "applies database migrations");
    }
    // Production database access.
    if a.iter().any(|x| {
        let l = x.to_ascii_lowercase();
        (l.contains("prod") && !l.contains("product")) || l.contains("production")
    }) && matches!(
        n,
        "psql"
            | "mysql"
            | "mariadb"
            | "mongosh"
            | "mongo"
            | "redis-cli"
            | "sqlcmd"
            | "cockroach"
            | "pgcli"
            | "mycli"
            | "usql"
            | "clickhouse-client"
    ) {
        az.hit("production-db-access", "connects to a production database");
    }
    // SQL given inline.
    let sql_flags: &[&str] = match n {
        "psql" | "pgcli" | "cockroach" | "usql" | "duckdb" => {
            &["-c", "--command", "-e", "--execute"]
        }
        "mysql" | "mariadb" | "mycli" => &["-e", "--execute"],
        "sqlcmd" => &["-Q", "-q"],
        "clickhouse-client" | "clickhouse" | "trino" | "presto" => &["-q", "--query", "--execute"],
        "snowsql" => &["-q", "--query"],
        "mongosh" | "mongo" => &["--eval"],
        "spark-sql" | "hive" | "beeline" => &["-e"],
        "cqlsh" => &["-e", "--execute"],
        "influx" => &["-execute"],
        "turso" => &[],
        "rails" | "manage.py" => &[],
        _ => &[],
    };
    let mut k = 0;
    while k < args.len() {
        let x = args[k].s.as_str();
        for fl in sql_flags {
            if x == *fl {
                if let Some(v) = args.get(k + 1) {
                    check_sql(az, &v.s, true);
                }
            } else if let Some(v) = x.strip_prefix(&format!("{fl}=")) {
                check_sql(az, v, true);
            } else if fl.len() == 2 && x.starts_with(fl) && x.len() > 2 && !x.starts_with("--") {
                check_sql(az, &x[2..], true);
            }
        }
        if matches!(x, "-f" | "--file" | "-i" | "--input")
            && matches!(
                n,
                "psql"
                    | "mysql"
                    | "mariadb"
                    | "sqlcmd"
                    | "cockroach"
                    | "clickhouse-client"
                    | "duckdb"
                    | "usql"
                    | "mongosh"
                    | "prisma"
            )
            && let Some(v) = args.get(k + 1)
            && let Some(c) = az.workspace_file(st, &v.s)
        {
            check_sql(az, c, true);
        }
        k += 1;
    }
    match n {
        "sqlite3" | "duckdb" | "litecli" | "turso" => {
            let ops = operands(args, &["-cmd", "-separator", "-nullvalue", "-init"]);
            for o in ops.iter().skip(1) {
                check_sql(az, &o.s, true);
            }
            if ops.len() <= 1 {
                stdin_sql(az, input);
            }
            for w in args.windows(2) {
                if w[0].s == "-cmd" {
                    check_sql(az, &w[1].s, true);
                }
            }
        }
        "bq" => {
            if a.first() == Some(&"query") {
                for o in operands(
                    &args[1..],
                    &[
                        "--project_id",
                        "--format",
                        "--max_rows",
                        "--parameter",
                        "--destination_table",
                        "--location",
                    ],
                ) {
                    check_sql(az, &o.s, true);
                }
            }
        }
        "redis-cli" | "valkey-cli" | "keydb-cli" => {}
        "rails" | "manage.py" | "django-admin" => {
            if let Some(k) = a
                .iter()
                .position(|x| *x == "runner" || *x == "shell" || *x == "dbshell")
            {
                if let Some(code) = args.get(k + 1) {
                    check_sql(az, &code.s, false);
                }
                if let Some(c) = args.iter().position(|f| f.s == "-c" || f.s == "--command")
                    && let Some(code) = args.get(c + 1)
                {
                    check_sql(az, &code.s, false);
                }
                stdin_sql(az, input);
            }
        }
        "prisma" => {
            if a.windows(2).any(|w| w[0] == "db" && w[1] == "execute") {
                stdin_sql(az, input);
            }
        }
        _ => {
            if !matches!(
                n,
                "rake"
                    | "alembic"
                    | "knex"
                    | "sequelize"
                    | "typeorm"
                    | "drizzle-kit"
                    | "flyway"
                    | "liquibase"
                    | "migrate"
                    | "dbmate"
                    | "goose"
                    | "atlas"
                    | "sqitch"
                    | "diesel"
                    | "sqlx"
                    | "artisan"
                    | "mix"
                    | "ecto"
                    | "supabase"
                    | "dropdb"
                    | "mysqladmin"
                    | "pg_restore"
            ) {
                stdin_sql(az, input);
            }
        }
    }
}

fn stdin_sql(az: &mut Analyzer<'_>, input: &Flow) {
    match input {
        Flow::Text(t) => {
            let t = t.clone();
            check_sql(az, &t, true);
        }
        Flow::Unknown(t) if *t >= Taint::Decoded => {
            az.taint_exec(*t, "a database runs decoded or downloaded SQL")
        }
        _ => {}
    }
}
