// Errors as they cross into JavaScript: the envelope `{code, message, hint}`
// with the fixed code set of lib/errors, rebuilt there as a ContainerError.
// Virtualization.framework reports NSErrors; `from_ns_error` maps their
// domain and code onto ours so that, say, a bad disk image is invalidArgument
// and a vsock port nobody listens on is unavailable.
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidArgument,
    NotFound,
    Exists,
    InvalidState,
    Timeout,
    Unsupported,
    Unavailable,
    ResourceExhausted,
    Cancelled,
    Internal,
}

impl ErrorCode {
    /// The name lib/errors uses.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidArgument => "invalidArgument",
            ErrorCode::NotFound => "notFound",
            ErrorCode::Exists => "exists",
            ErrorCode::InvalidState => "invalidState",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Unsupported => "unsupported",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::ResourceExhausted => "resourceExhausted",
            ErrorCode::Cancelled => "cancelled",
            ErrorCode::Internal => "internal",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BridgeError {
    pub code: ErrorCode,
    pub message: String,
    pub hint: Option<String>,
}

pub type BridgeResult<T> = Result<T, BridgeError>;

impl BridgeError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        BridgeError { code, message: message.into(), hint: None }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// The envelope as JSON text: what a rejected call carries as its message.
    pub fn to_json(&self) -> String {
        let mut out = format!(
            "{{\"code\":{},\"message\":{}",
            json_string(self.code.as_str()),
            json_string(&self.message)
        );
        if let Some(hint) = &self.hint {
            out.push_str(",\"hint\":");
            out.push_str(&json_string(hint));
        }
        out.push('}');
        out
    }
}

impl fmt::Display for BridgeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for BridgeError {}

/// A JSON string literal (RFC 8259): quotes, backslashes and control characters escaped.
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

pub const VZ_ERROR_DOMAIN: &str = "VZErrorDomain";
pub const POSIX_ERROR_DOMAIN: &str = "NSPOSIXErrorDomain";

// VZErrorCode values (VZError.h).
const VZ_INTERNAL: i64 = 1;
const VZ_INVALID_CONFIGURATION: i64 = 2;
const VZ_INVALID_STATE: i64 = 3;
const VZ_INVALID_STATE_TRANSITION: i64 = 4;
const VZ_INVALID_DISK_IMAGE: i64 = 5;
const VZ_LIMIT_EXCEEDED: i64 = 6;
const VZ_NETWORK_ERROR: i64 = 7;
const VZ_OUT_OF_DISK_SPACE: i64 = 8;
const VZ_OPERATION_CANCELLED: i64 = 9;
const VZ_NOT_SUPPORTED: i64 = 10;

// errno values as Darwin numbers them (they differ from Linux past 34).
const EPERM: i64 = 1;
const ENOENT: i64 = 2;
const EACCES: i64 = 13;
const EEXIST: i64 = 17;
const EINVAL: i64 = 22;
const ENOSPC: i64 = 28;
const ECONNRESET: i64 = 54;
const ETIMEDOUT: i64 = 60;
const ECONNREFUSED: i64 = 61;

const ENTITLEMENT_HINT: &str =
    "the VM host must run under the signed Node (node native/virtualization-bridge/build.mjs); see native/virtualization-bridge/README.md";

/// What an NSError means in our codes. `what` says which operation failed.
pub fn from_ns_error(what: &str, domain: &str, code: i64, description: &str) -> BridgeError {
    let message = format!("{what}: {description} ({domain} {code})");
    let ours = match domain {
        VZ_ERROR_DOMAIN => match code {
            VZ_INVALID_CONFIGURATION | VZ_INVALID_DISK_IMAGE => ErrorCode::InvalidArgument,
            VZ_INVALID_STATE | VZ_INVALID_STATE_TRANSITION => ErrorCode::InvalidState,
            VZ_LIMIT_EXCEEDED | VZ_OUT_OF_DISK_SPACE => ErrorCode::ResourceExhausted,
            VZ_NETWORK_ERROR => ErrorCode::Unavailable,
            VZ_OPERATION_CANCELLED => ErrorCode::Cancelled,
            VZ_NOT_SUPPORTED => ErrorCode::Unsupported,
            VZ_INTERNAL => ErrorCode::Internal,
            _ => ErrorCode::Internal,
        },
        POSIX_ERROR_DOMAIN => match code {
            ENOENT => ErrorCode::NotFound,
            EEXIST => ErrorCode::Exists,
            EINVAL => ErrorCode::InvalidArgument,
            EPERM | EACCES => ErrorCode::InvalidArgument,
            ENOSPC => ErrorCode::ResourceExhausted,
            ETIMEDOUT => ErrorCode::Timeout,
            // A guest port nobody listens on: the guest resets the connection.
            ECONNRESET | ECONNREFUSED => ErrorCode::Unavailable,
            _ => ErrorCode::Internal,
        },
        _ => ErrorCode::Internal,
    };
    let err = BridgeError::new(ours, message);
    // Without the entitlement VZ rejects the configuration, naming it.
    let unentitled = description.contains("com.apple.security.virtualization");
    match (domain, code) {
        (VZ_ERROR_DOMAIN, VZ_LIMIT_EXCEEDED) => err.with_hint("stop other virtual machines, or give this one fewer CPUs or less memory"),
        (POSIX_ERROR_DOMAIN, EPERM | EACCES) => err.with_hint(ENTITLEMENT_HINT),
        _ if unentitled => BridgeError { code: ErrorCode::Unavailable, ..err.with_hint(ENTITLEMENT_HINT) },
        _ => err,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_is_json_with_optional_hint() {
        let e = BridgeError::new(ErrorCode::NotFound, "guest kernel /k does not exist");
        assert_eq!(e.to_json(), r#"{"code":"notFound","message":"guest kernel /k does not exist"}"#);
        let e = e.with_hint("run setup");
        assert_eq!(e.to_json(), r#"{"code":"notFound","message":"guest kernel /k does not exist","hint":"run setup"}"#);
    }

    #[test]
    fn json_strings_escape_quotes_backslashes_and_controls() {
        assert_eq!(json_string("a\"b\\c\nd\u{1}é"), r#""a\"b\\c\nd\u0001é""#);
    }

    #[test]
    fn every_code_has_the_lib_errors_name() {
        let names: Vec<&str> = [
            ErrorCode::InvalidArgument,
            ErrorCode::NotFound,
            ErrorCode::Exists,
            ErrorCode::InvalidState,
            ErrorCode::Timeout,
            ErrorCode::Unsupported,
            ErrorCode::Unavailable,
            ErrorCode::ResourceExhausted,
            ErrorCode::Cancelled,
            ErrorCode::Internal,
        ]
        .iter()
        .map(|c| c.as_str())
        .collect();
        assert_eq!(
            names,
            [
                "invalidArgument", "notFound", "exists", "invalidState", "timeout",
                "unsupported", "unavailable", "resourceExhausted", "cancelled", "internal"
            ]
        );
    }

    #[test]
    fn maps_virtualization_errors() {
        let e = from_ns_error("start", VZ_ERROR_DOMAIN, 2, "bad config");
        assert_eq!(e.code, ErrorCode::InvalidArgument);
        assert_eq!(e.message, "start: bad config (VZErrorDomain 2)");
        assert_eq!(from_ns_error("start", VZ_ERROR_DOMAIN, 4, "").code, ErrorCode::InvalidState);
        let limit = from_ns_error("start", VZ_ERROR_DOMAIN, 6, "too many");
        assert_eq!(limit.code, ErrorCode::ResourceExhausted);
        assert!(limit.hint.is_some());
        assert_eq!(from_ns_error("x", VZ_ERROR_DOMAIN, 10, "").code, ErrorCode::Unsupported);
        assert_eq!(from_ns_error("x", VZ_ERROR_DOMAIN, 30004, "").code, ErrorCode::Internal);
    }

    #[test]
    fn a_missing_entitlement_is_unavailable_with_a_hint() {
        let e = from_ns_error(
            "invalid VM configuration",
            VZ_ERROR_DOMAIN,
            2,
            "The process doesn't have the \"com.apple.security.virtualization\" entitlement.",
        );
        assert_eq!(e.code, ErrorCode::Unavailable);
        assert!(e.hint.unwrap().contains("signed Node"));
    }

    #[test]
    fn maps_posix_errors_with_darwin_numbers() {
        assert_eq!(from_ns_error("connect", POSIX_ERROR_DOMAIN, 54, "reset").code, ErrorCode::Unavailable);
        assert_eq!(from_ns_error("connect", POSIX_ERROR_DOMAIN, 61, "refused").code, ErrorCode::Unavailable);
        assert_eq!(from_ns_error("connect", POSIX_ERROR_DOMAIN, 60, "").code, ErrorCode::Timeout);
        assert_eq!(from_ns_error("open", POSIX_ERROR_DOMAIN, 2, "").code, ErrorCode::NotFound);
        let denied = from_ns_error("start", POSIX_ERROR_DOMAIN, 1, "not permitted");
        assert!(denied.hint.unwrap().contains("build.mjs"));
        assert_eq!(from_ns_error("x", "NSCocoaErrorDomain", 4, "").code, ErrorCode::Internal);
    }
}
