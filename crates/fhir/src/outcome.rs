//! `OperationOutcome`: what went wrong (or what to know), and where.

use serde_json::{Value, json};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Fatal,
    Error,
    Warning,
    Information,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Fatal => "fatal",
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Information => "information",
        }
    }
}

/// One issue: severity, an `issue-type` code (`invalid`, `required`, `value`, `structure`,
/// `not-found`, `processing`, `duplicate`, `not-supported`, `informational` …), a message
/// and the FHIRPath of the element concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issue {
    pub severity: Severity,
    pub code: &'static str,
    pub diagnostics: String,
    pub expression: Option<String>,
}

impl Issue {
    pub fn error(code: &'static str, diagnostics: impl Into<String>, expression: impl Into<Option<String>>) -> Self {
        Self { severity: Severity::Error, code, diagnostics: diagnostics.into(), expression: expression.into() }
    }

    pub fn warning(code: &'static str, diagnostics: impl Into<String>, expression: impl Into<Option<String>>) -> Self {
        Self { severity: Severity::Warning, code, diagnostics: diagnostics.into(), expression: expression.into() }
    }

    pub fn info(diagnostics: impl Into<String>) -> Self {
        Self {
            severity: Severity::Information,
            code: "informational",
            diagnostics: diagnostics.into(),
            expression: None,
        }
    }

    /// The same issue about an element inside `prefix` (e.g. a Bundle entry).
    pub fn within(mut self, prefix: &str) -> Self {
        self.expression = Some(match self.expression.take() {
            Some(e) => format!("{prefix}.{}", e.split_once('.').map_or(e.as_str(), |(_, rest)| rest)),
            None => prefix.to_owned(),
        });
        self
    }
}

/// A refused request: the HTTP status and the issues of its OperationOutcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FhirError {
    pub status: u16,
    pub issues: Vec<Issue>,
}

impl FhirError {
    pub fn new(status: u16, issue: Issue) -> Self {
        Self { status, issues: vec![issue] }
    }

    /// 400: the content is not valid FHIR.
    pub fn invalid(code: &'static str, diagnostics: impl Into<String>, expression: impl Into<Option<String>>) -> Self {
        Self::new(400, Issue::error(code, diagnostics, expression))
    }

    pub fn outcome(&self) -> Value {
        outcome(&self.issues)
    }
}

impl std::fmt::Display for FhirError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let first = self.issues.first();
        write!(f, "{} {}", self.status, first.map_or("", |i| i.diagnostics.as_str()))?;
        if let Some(e) = first.and_then(|i| i.expression.as_deref()) {
            write!(f, " at {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for FhirError {}

/// An OperationOutcome resource of `issues` (one informational issue when empty: R4
/// requires at least one).
pub fn outcome(issues: &[Issue]) -> Value {
    let issue: Vec<Value> = if issues.is_empty() {
        vec![json!({"severity": "information", "code": "informational", "diagnostics": "ok"})]
    } else {
        issues
            .iter()
            .map(|i| {
                let mut v = json!({"severity": i.severity.as_str(), "code": i.code, "diagnostics": i.diagnostics});
                if let Some(e) = &i.expression {
                    v["expression"] = json!([e]);
                }
                v
            })
            .collect()
    };
    json!({"resourceType": "OperationOutcome", "issue": issue})
}
