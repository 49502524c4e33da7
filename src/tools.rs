//! Tool subcommands: `cosmount sign` (an Authorization value), `cosmount presign` (a
//! presigned URL), `cosmount uploads list|abort` (incomplete multipart uploads, see
//! `tools/uploads.rs`) and `cosmount recover` (unfinished writes left in the spool journal,
//! see `tools/recover.rs`). Credentials come from `COS_SECRET_ID` / `COS_SECRET_KEY` (and
//! `COS_SECURITY_TOKEN`); only the result goes to stdout, so the commands compose with curl.

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::cos::sign::{self, KeyTime, SignRequest};
use crate::cos::{Client, ClientConfig, Credentials};

mod recover;
mod uploads;

/// Exit status for usage and configuration errors (as clap uses).
const EXIT_USAGE: u8 = 2;
/// Exit status when the work itself failed (a request, or some of the aborts).
const EXIT_FAILURE: u8 = 1;

#[derive(Debug, Parser)]
#[command(
    name = "cosmount",
    about = "COS request-signing tools",
    after_help = "Credentials are read from COS_SECRET_ID and COS_SECRET_KEY (and COS_SECURITY_TOKEN for temporary keys)."
)]
struct ToolCli {
    #[command(subcommand)]
    tool: Tool,
}

#[derive(Debug, Subcommand)]
enum Tool {
    /// Print the Authorization value for a request (COS "q-sign" signature).
    ///
    /// Exactly the headers and parameters given are signed, with the values as given. The
    /// temporary token (COS_SECURITY_TOKEN) is not added on its own: a request carrying it
    /// should sign it too, so pass it as --header 'x-cos-security-token: TOKEN'.
    Sign(SignArgs),
    /// Print a presigned URL (signature in the query string; host signed).
    ///
    /// With COS_SECURITY_TOKEN set, the token is appended as x-cos-security-token and signed.
    Presign(PresignArgs),
    /// List or abort incomplete multipart uploads (interrupted writes keep costing storage).
    #[command(subcommand)]
    Uploads(uploads::UploadsCommand),
    /// List, commit or discard the unfinished writes a crashed or stopped mount left in its
    /// spool journal (files open for writing at kill -9 or SIGTERM).
    Recover(recover::RecoverArgs),
}

#[derive(Debug, Args)]
struct SignArgs {
    /// HTTP method, any case.
    #[arg(long, default_value = "get")]
    method: String,
    /// The raw object key (not URL-encoded); `/` or empty for a bucket-level request.
    #[arg(long, default_value = "/", allow_hyphen_values = true)]
    key: String,
    /// A header to sign, `Name: value` (split at the first `:`; one space after it is dropped).
    #[arg(
        long = "header",
        value_name = "NAME: VALUE",
        allow_hyphen_values = true
    )]
    headers: Vec<String>,
    /// A query parameter to sign, `name=value` (raw, not URL-encoded) or a bare `name`.
    #[arg(
        long = "param",
        value_name = "NAME[=VALUE]",
        allow_hyphen_values = true
    )]
    params: Vec<String>,
    #[command(flatten)]
    window: Window,
}

#[derive(Debug, Args)]
struct Window {
    /// Start of the validity window, Unix seconds (default: now - 60).
    #[arg(long)]
    start: Option<i64>,
    /// End of the validity window, Unix seconds (default: now + --expires).
    #[arg(long)]
    end: Option<i64>,
    /// Seconds of validity from now, when --end is not given.
    #[arg(long, default_value_t = 3600)]
    expires: i64,
}

#[derive(Debug, Args)]
struct PresignArgs {
    /// Bucket name with APPID, e.g. examplebucket-1250000000.
    bucket: String,
    /// Raw object key (not URL-encoded); `/` for the bucket itself.
    #[arg(allow_hyphen_values = true)]
    key: String,
    /// HTTP method the URL is for.
    #[arg(long, default_value = "get")]
    method: String,
    /// Region, e.g. ap-guangzhou (default: COS_REGION; required without --endpoint).
    #[arg(long)]
    region: Option<String>,
    /// Endpoint URL, e.g. http://127.0.0.1:9000 (IP or localhost: path style; default: COS_ENDPOINT).
    #[arg(long)]
    endpoint: Option<String>,
    /// Use path style (`/{bucket}/{key}`) even for a DNS endpoint.
    #[arg(long)]
    path_style: bool,
    /// A query parameter to sign and append, `name=value` (e.g. response-content-type=text/plain).
    #[arg(
        long = "param",
        value_name = "NAME[=VALUE]",
        allow_hyphen_values = true
    )]
    params: Vec<String>,
    #[command(flatten)]
    window: Window,
}

/// A user-facing failure: message and exit status.
struct Failure {
    message: String,
    code: u8,
}

fn usage(message: impl Into<String>) -> Failure {
    Failure {
        message: message.into(),
        code: EXIT_USAGE,
    }
}

pub fn main(args: Vec<OsString>) -> ExitCode {
    let cli = match ToolCli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            // --help/--version print to stdout and succeed; usage errors go to stderr.
            let _ = e.print();
            return ExitCode::from(e.exit_code().clamp(0, 255) as u8);
        }
    };
    let result = match cli.tool {
        Tool::Sign(a) => run_sign(a),
        Tool::Presign(a) => run_presign(a),
        Tool::Uploads(cmd) => return uploads::run(cmd),
        Tool::Recover(a) => return recover::run(a),
    };
    match result {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(f) => {
            eprintln!("cosmount: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

/// An environment variable that is set and not empty.
fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// SecretId and SecretKey from the environment (never echoed).
fn env_credentials() -> Result<Credentials, Failure> {
    let (Some(id), Some(key)) = (env_var("COS_SECRET_ID"), env_var("COS_SECRET_KEY")) else {
        return Err(usage(
            "set COS_SECRET_ID and COS_SECRET_KEY in the environment (and COS_SECURITY_TOKEN for temporary keys)",
        ));
    };
    let mut creds = Credentials::new(id, key);
    creds.token = env_var("COS_SECURITY_TOKEN");
    Ok(creds)
}

fn key_time(w: &Window) -> Result<KeyTime, Failure> {
    if w.expires <= 0 {
        return Err(usage("--expires must be positive"));
    }
    let now = sign::unix_now();
    let kt = KeyTime {
        start: w.start.unwrap_or(now - 60),
        end: w.end.unwrap_or(now + w.expires),
    };
    if kt.end < kt.start {
        return Err(usage(format!(
            "the window ends ({}) before it starts ({})",
            kt.end, kt.start
        )));
    }
    Ok(kt)
}

/// `name=value` -> (name, value); a bare `name` has the empty value.
fn parse_param(p: &str) -> Result<(String, String), Failure> {
    let (name, value) = p.split_once('=').unwrap_or((p, ""));
    if name.is_empty() {
        return Err(usage(format!("--param {p:?} has no name")));
    }
    Ok((name.to_string(), value.to_string()))
}

/// Every `--param`, parsed.
fn parse_params(params: &[String]) -> Result<Vec<(String, String)>, Failure> {
    params.iter().map(|p| parse_param(p)).collect()
}

/// `Name: value` -> (Name, value): split at the first `:`, drop one space after it. The rest of
/// the value is kept as given, because COS signs header values as sent.
fn parse_header(h: &str) -> Result<(String, String), Failure> {
    let Some((name, value)) = h.split_once(':') else {
        return Err(usage(format!("--header {h:?} is not 'Name: value'")));
    };
    let name = name.trim();
    if name.is_empty() {
        return Err(usage(format!("--header {h:?} has no name")));
    }
    let value = value.strip_prefix(' ').unwrap_or(value);
    Ok((name.to_string(), value.to_string()))
}

fn run_sign(a: SignArgs) -> Result<String, Failure> {
    let creds = env_credentials()?;
    let kt = key_time(&a.window)?;
    let params = parse_params(&a.params)?;
    let headers = a
        .headers
        .iter()
        .map(|h| parse_header(h))
        .collect::<Result<Vec<_>, _>>()?;
    if creds.token.is_some()
        && !headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("x-cos-security-token"))
    {
        eprintln!(
            "cosmount: note: COS_SECURITY_TOKEN is set but not signed; pass it as --header 'x-cos-security-token: ...' if the request sends it"
        );
    }
    if a.method.is_empty() || !a.method.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(usage(format!(
            "--method {:?} is not an HTTP method",
            a.method
        )));
    }
    let sig = sign::sign(
        &creds.secret_key,
        kt,
        &SignRequest {
            method: &a.method,
            key: &a.key,
            params: &params,
            headers: &headers,
        },
    );
    Ok(sig.authorization(&creds.secret_id))
}

fn run_presign(a: PresignArgs) -> Result<String, Failure> {
    let creds = env_credentials()?;
    let kt = key_time(&a.window)?;
    let params = parse_params(&a.params)?;
    let method = reqwest::Method::from_bytes(a.method.to_ascii_uppercase().as_bytes())
        .map_err(|_| usage(format!("--method {:?} is not an HTTP method", a.method)))?;
    let region = a
        .region
        .or_else(|| env_var("COS_REGION"))
        .unwrap_or_default();
    let mut config = ClientConfig::new(a.bucket, region, creds);
    config.endpoint = a.endpoint.or_else(|| env_var("COS_ENDPOINT"));
    config.path_style = a.path_style;
    let client = Client::new(config).map_err(|e| usage(e.to_string()))?;
    let key = match a.key.as_str() {
        "" | "/" => None,
        k => Some(k),
    };
    client
        .presigned_url_with_time(&method, key, &params, kt)
        .map_err(|e| Failure {
            message: e.to_string(),
            code: EXIT_FAILURE,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_parsing_keeps_value_as_given() {
        let h = |s: &str| parse_header(s).ok().unwrap();
        assert_eq!(h("Host: a.b:9000"), ("Host".into(), "a.b:9000".into()));
        assert_eq!(h("x-cos-meta-a:b"), ("x-cos-meta-a".into(), "b".into()));
        assert_eq!(
            h("x-cos-meta-a:  two"),
            ("x-cos-meta-a".into(), " two".into())
        );
        assert!(parse_header("novalue").is_err());
        assert!(parse_header(": v").is_err());
    }

    #[test]
    fn param_parsing() {
        let p = |s: &str| parse_param(s).ok().unwrap();
        assert_eq!(p("uploads"), ("uploads".into(), String::new()));
        assert_eq!(p("partNumber=3"), ("partNumber".into(), "3".into()));
        assert_eq!(p("prefix=a=b"), ("prefix".into(), "a=b".into()));
        assert!(parse_param("=x").is_err());
    }
}
