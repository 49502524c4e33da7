//! A small HTTP/1.1 client for the tests, on hyper (already in cos-local's tree), so the tests
//! need neither reqwest nor a TLS stack: cos-local speaks plain HTTP only.
//!
//! The call sites read like reqwest's: `Client::new().request(method, url).header(..).body(..)
//! .send().await`, then `status()`, `headers()`, `chunk()`, `bytes()`, `text()` on the response.
//! A connection that breaks before the whole response (head and body) arrived is an `Err`.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
pub use hyper::{HeaderMap, Method, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::time::Instant;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What went wrong; only timeouts are told apart by the tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The URL, method or a header could not be used.
    Builder,
    /// Connecting, sending the request or reading the response head failed.
    Request,
    /// The response body broke off.
    Body,
    /// The client's timeout ran out.
    Timeout,
}

#[derive(Debug)]
pub struct Error {
    kind: Kind,
    source: Option<BoxError>,
}

impl Error {
    fn new(kind: Kind, source: impl Into<BoxError>) -> Error {
        Error {
            kind,
            source: Some(source.into()),
        }
    }

    fn timeout() -> Error {
        Error {
            kind: Kind::Timeout,
            source: None,
        }
    }

    pub fn is_timeout(&self) -> bool {
        self.kind == Kind::Timeout
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            Kind::Builder => "invalid request",
            Kind::Request => "request failed",
            Kind::Body => "response body failed",
            Kind::Timeout => "timed out",
        };
        match &self.source {
            // hyper's outer error says little ("client error (SendRequest)"): add the causes.
            Some(source) => {
                write!(f, "{what}: {source}")?;
                let mut cause = source.source();
                while let Some(c) = cause {
                    write!(f, ": {c}")?;
                    cause = c.source();
                }
                Ok(())
            }
            None => f.write_str(what),
        }
    }
}

impl std::error::Error for Error {}

/// A pooled HTTP/1.1 client (cheap to clone), optionally with a deadline for each whole
/// request: connect, send, response head and body.
#[derive(Clone)]
pub struct Client {
    inner: hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>>,
    timeout: Option<Duration>,
}

impl Default for Client {
    fn default() -> Client {
        Client::new()
    }
}

impl Client {
    pub fn new() -> Client {
        Client::with_timeout(None)
    }

    /// A client whose requests fail with a timeout error (`is_timeout()`) after `timeout`.
    pub fn with_timeout(timeout: impl Into<Option<Duration>>) -> Client {
        let mut connector = HttpConnector::new();
        // Head and body go out in separate writes: without this, Nagle plus delayed ACKs
        // would add tens of milliseconds to small requests.
        connector.set_nodelay(true);
        let inner = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector);
        Client {
            inner,
            timeout: timeout.into(),
        }
    }

    pub fn request(&self, method: Method, url: impl AsRef<str>) -> RequestBuilder {
        let request = url
            .as_ref()
            .parse::<hyper::Uri>()
            .map_err(|e| Error::new(Kind::Builder, e))
            .and_then(|uri| match uri.scheme_str() {
                Some("http") => Ok(uri),
                _ => Err(Error::new(
                    Kind::Builder,
                    format!("not an http:// URL: {uri}"),
                )),
            })
            .map(|uri| {
                let mut req = hyper::Request::new(Full::new(Bytes::new()));
                *req.method_mut() = method;
                *req.uri_mut() = uri;
                req
            });
        RequestBuilder {
            client: self.clone(),
            request,
        }
    }

    pub fn get(&self, url: impl AsRef<str>) -> RequestBuilder {
        self.request(Method::GET, url)
    }

    pub fn put(&self, url: impl AsRef<str>) -> RequestBuilder {
        self.request(Method::PUT, url)
    }
}

/// An unsigned GET with a fresh client.
pub async fn get(url: impl AsRef<str>) -> Result<Response, Error> {
    Client::new().get(url).send().await
}

/// A request being built; an invalid part is reported by `send`.
pub struct RequestBuilder {
    client: Client,
    request: Result<hyper::Request<Full<Bytes>>, Error>,
}

impl RequestBuilder {
    /// Add a header (an existing one of the same name is kept: the value is appended).
    /// No Host header given: the one of the URL is sent.
    pub fn header<K, V>(mut self, name: K, value: V) -> RequestBuilder
    where
        HeaderName: TryFrom<K>,
        <HeaderName as TryFrom<K>>::Error: Into<hyper::http::Error>,
        HeaderValue: TryFrom<V>,
        <HeaderValue as TryFrom<V>>::Error: Into<hyper::http::Error>,
    {
        if let Ok(req) = &mut self.request {
            let name = HeaderName::try_from(name).map_err(Into::into);
            let value = HeaderValue::try_from(value).map_err(Into::into);
            match name.and_then(|n| value.map(|v| (n, v))) {
                Ok((n, v)) => {
                    req.headers_mut().append(n, v);
                }
                Err(e) => self.request = Err(Error::new(Kind::Builder, e)),
            }
        }
        self
    }

    /// The whole request body (sent with its Content-Length; an empty body sends none).
    pub fn body(mut self, body: impl Into<Bytes>) -> RequestBuilder {
        if let Ok(req) = &mut self.request {
            *req.body_mut() = Full::new(body.into());
        }
        self
    }

    /// Send the request and wait for the response head.
    pub async fn send(self) -> Result<Response, Error> {
        let req = self.request?;
        let deadline = self.client.timeout.map(|t| Instant::now() + t);
        let sent = self.client.inner.request(req);
        let resp = match deadline {
            Some(d) => tokio::time::timeout_at(d, sent)
                .await
                .map_err(|_| Error::timeout())?,
            None => sent.await,
        }
        .map_err(|e| Error::new(Kind::Request, e))?;
        let (head, body) = resp.into_parts();
        Ok(Response {
            status: head.status,
            headers: head.headers,
            body,
            deadline,
        })
    }
}

/// A response whose head has arrived; the body is read on demand.
pub struct Response {
    status: StatusCode,
    headers: HeaderMap,
    body: Incoming,
    deadline: Option<Instant>,
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .finish_non_exhaustive()
    }
}

impl Response {
    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The next piece of the body, None at its end. A body shorter than its Content-Length
    /// (the connection closed early) is an Err, not an end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, Error> {
        loop {
            let frame = match self.deadline {
                Some(d) => tokio::time::timeout_at(d, self.body.frame())
                    .await
                    .map_err(|_| Error::timeout())?,
                None => self.body.frame().await,
            };
            match frame {
                None => return Ok(None),
                Some(Err(e)) => return Err(Error::new(Kind::Body, e)),
                Some(Ok(frame)) => {
                    // Trailers (not used by cos-local) are skipped.
                    if let Ok(data) = frame.into_data() {
                        if !data.is_empty() {
                            return Ok(Some(data));
                        }
                    }
                }
            }
        }
    }

    /// The whole body.
    pub async fn bytes(mut self) -> Result<Bytes, Error> {
        let mut all = Vec::new();
        while let Some(chunk) = self.chunk().await? {
            all.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(all))
    }

    /// The whole body as text (invalid UTF-8 replaced).
    pub async fn text(self) -> Result<String, Error> {
        let body = self.bytes().await?;
        Ok(String::from_utf8_lossy(&body).into_owned())
    }
}
