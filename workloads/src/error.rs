//! The one error body every HTTP answer hostlab makes uses (the API, the
//! proxy, the limits, the admin endpoint): DESIGN.md's
//! `{"error":{"code":"<snake_case>","message":"<what is wrong and how to fix it>"}}`.
//! Like pingora's errors it also records whose fault the error was; the
//! body stays exactly as DESIGN.md gives it, so the fault travels in the
//! `x-hostlab-fault` header (`client`, `upstream` or `hostlab`).

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Response, StatusCode, header};
use axum::response::IntoResponse;

/// The header that names an error's [`Fault`].
pub static FAULT_HEADER: HeaderName = HeaderName::from_static("x-hostlab-fault");

/// Whose fault an error was (pingora's `ErrorSource`: downstream, upstream,
/// internal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The request: bad input, over a limit, unknown path (every 4xx).
    Client,
    /// The process behind the one that answers: the app behind the proxy,
    /// the actor service behind a split front.
    Upstream,
    /// The answering process itself: overloaded, shutting down, a bug.
    Hostlab,
}

impl Fault {
    pub fn name(self) -> &'static str {
        match self {
            Fault::Client => "client",
            Fault::Upstream => "upstream",
            Fault::Hostlab => "hostlab",
        }
    }
}

/// An error answer: status, stable `code`, a message that says how to fix
/// it, whose fault it was, and how the connection goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub fault: Fault,
    /// `Retry-After` in seconds.
    pub retry_after_s: Option<u32>,
    /// Answer with `Connection: close`: after a refused request the server
    /// does not trust the connection's framing any more.
    pub close: bool,
}

impl ApiError {
    /// A 4xx is the client's fault, anything else hostlab's until said
    /// otherwise ([`ApiError::upstream`]). A 408 closes the connection (the
    /// rest of the body may still be on its way).
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            fault: if status.is_client_error() {
                Fault::Client
            } else {
                Fault::Hostlab
            },
            retry_after_s: None,
            close: status == StatusCode::REQUEST_TIMEOUT,
        }
    }

    /// The process behind this one failed.
    pub fn upstream(self) -> Self {
        Self {
            fault: Fault::Upstream,
            ..self
        }
    }

    /// Ask the client to retry after `seconds`.
    pub fn retry_after(self, seconds: u32) -> Self {
        Self {
            retry_after_s: Some(seconds),
            ..self
        }
    }

    /// Close the connection after this answer.
    pub fn closing(self) -> Self {
        Self { close: true, ..self }
    }

    /// 408 for a body not received within `limit`.
    pub fn request_timeout(limit: std::time::Duration) -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!("the request body did not arrive within {limit:?}; send it faster or in a smaller request"),
        )
    }

    /// 413 for a body over `limit` bytes.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the request body is over the {limit}-byte limit of this route; send less"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response<Body> {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        let mut response = Response::new(Body::from(body.to_string()));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(FAULT_HEADER.clone(), HeaderValue::from_static(self.fault.name()));
        if let Some(s) = self.retry_after_s {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if self.close {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body_json(response: Response<Body>) -> serde_json::Value {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn the_body_is_exactly_code_and_message() {
        let response = ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such book").into_response();
        assert_eq!(response.status(), 404);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(
            body_json(response).await,
            serde_json::json!({"error": {"code": "not_found", "message": "no such book"}})
        );
    }

    #[test]
    fn the_fault_header_says_whose_fault() {
        let fault = |e: ApiError| e.into_response().headers()[&FAULT_HEADER].clone();
        assert_eq!(
            fault(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "validation", "x")),
            "client"
        );
        assert_eq!(
            fault(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "x")),
            "hostlab"
        );
        assert_eq!(
            fault(ApiError::new(StatusCode::BAD_GATEWAY, "bad_gateway", "x").upstream()),
            "upstream"
        );
    }

    #[test]
    fn retry_after_and_close_are_headers() {
        let response = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", "x")
            .retry_after(1)
            .into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        assert!(!response.headers().contains_key(header::CONNECTION));
        let response = ApiError::request_timeout(std::time::Duration::from_secs(1)).into_response();
        assert_eq!(response.headers()[header::CONNECTION], "close", "408 closes by itself");
        let response = ApiError::new(StatusCode::BAD_REQUEST, "bad_request", "x")
            .closing()
            .into_response();
        assert_eq!(response.headers()[header::CONNECTION], "close");
    }
}
