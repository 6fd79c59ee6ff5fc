//! The selection-criteria language (docs/api.md, "Campaigns and customer selection"), parsed into a typed
//! tree and compiled to a parameterised SQL predicate over `customers c`.
//!
//! ```json
//! {"segment": "premium", "kyc_status": "verified"}
//! {"credit_score": {"gte": 700}, "state": {"in": ["KA", "MH"]}}
//! {"annual_income": {"between": [500000, 2000000]}, "attributes.card_category": "gold"}
//! {"any": [{"segment": "gold"}, {"segment": "platinum"}], "not": {"kyc_status": "rejected"}}
//! ```
//!
//! - The keys of an object are ANDed. A key is a column of the allow-list [`COLUMNS`], a key of
//!   the `attributes` JSON object written `attributes.<key>` (`[A-Za-z0-9_]{1,64}`), or one of
//!   the compositions `all` (array of objects, AND), `any` (array of objects, OR) and `not`
//!   (object).
//! - A value is an operator object (`{"gte": 700}`, several operators are ANDed), a bare
//!   scalar (`eq`) or a bare array (`in`). Operators: [`Operator`].
//! - Values are typed against the column: text columns take strings (and the CHECK-constrained
//!   ones only their allowed values), integer and numeric columns numbers, `dob` ISO dates
//!   (`YYYY-MM-DD`), `is_active` booleans. Ordering operators work on numbers and dates (and on
//!   numbers or strings of `attributes`).
//! - A customer whose column is NULL matches no comparison; `ne` and `not_in` are the exact
//!   negations of `eq` and `in`, so they do match it. `exists` tests for NULL.
//! - Inactive customers (`is_active = false`) are left out unless the criteria name
//!   `is_active` somewhere.
//! - Limits: [`MAX_DEPTH`] nested compositions, [`MAX_NODES`] conditions, [`MAX_LIST_LEN`]
//!   values per list, [`MAX_TEXT_LEN`] characters per string.
//!
//! The SQL contains only allow-listed column names, fixed operators and `$n` placeholders; no
//! text of the criteria ever reaches it. Errors carry a JSON Pointer (RFC 6901) into the
//! criteria, so the API can answer 422 naming the offending key.

mod parse;
mod sql;

use chrono::NaiveDate;
use serde_json::Value;
use tokio_postgres::types::ToSql;

use parse::Parser;
use sql::Emitter;

/// OpenAPI schema of a criteria document (the language above), for request and response
/// bodies: a JSON object, checked by [`Criteria::parse`] (422 naming the offending key).
#[derive(Debug, Clone, Copy)]
pub struct SelectionCriteria;

impl utoipa::PartialSchema for SelectionCriteria {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::Object)
            .description(Some(
                "Which customers a campaign selects. Keys are ANDed: a customers column \
                 (segment, kyc_status, credit_score, annual_income, state, city, dob, gender, \
                 marital_status, occupation, account_age_months, preferred_language, pin_code, \
                 is_active), `attributes.<key>`, or `all` / `any` (arrays of criteria) and \
                 `not` (criteria). A value is a scalar (`eq`), an array (`in`) or an operator \
                 object: eq, ne, gt, gte, lt, lte, in, not_in, between (two values) and \
                 exists (boolean). Inactive customers are left out unless `is_active` is named.",
            ))
            .examples([serde_json::json!({
                "kyc_status": "verified",
                "any": [{"segment": "gold"}, {"segment": "platinum"}],
                "credit_score": {"gte": 700}
            })])
            .into()
    }
}

impl utoipa::ToSchema for SelectionCriteria {}

/// Deepest nesting of `all` / `any` / `not`.
pub const MAX_DEPTH: usize = 8;
/// Most conditions (leaf comparisons plus compositions) in one criteria document.
pub const MAX_NODES: usize = 256;
/// Longest `in` / `not_in` list.
pub const MAX_LIST_LEN: usize = 1000;
/// Longest string value, in characters.
pub const MAX_TEXT_LEN: usize = 256;
/// Longest `attributes.<key>` key, in characters.
pub const MAX_ATTRIBUTE_KEY_LEN: usize = 64;

/// The SQL type a criteria value is checked and bound as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// `text`; values are JSON strings.
    Text,
    /// `int4`; values are JSON integers (bound as `int8`).
    Integer,
    /// `numeric`; values are JSON numbers (bound exactly, as their decimal text).
    Numeric,
    /// `date`; values are `YYYY-MM-DD` strings.
    Date,
    /// `boolean`; values are JSON booleans.
    Boolean,
}

/// A `customers` column that criteria may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    /// The column's name, as in SQL and in criteria.
    pub name: &'static str,
    /// Its type.
    pub ty: ColumnType,
    /// The values its CHECK constraint allows, if any.
    pub allowed: Option<&'static [&'static str]>,
}

/// `customers.gender` values (seed CHECK constraint).
pub const GENDERS: &[&str] = &["male", "female", "other"];
/// `customers.kyc_status` values (seed CHECK constraint).
pub const KYC_STATUSES: &[&str] = &["verified", "pending", "rejected"];
/// `customers.marital_status` values (seed CHECK constraint).
pub const MARITAL_STATUSES: &[&str] = &["single", "married", "divorced", "widowed"];

const fn column(name: &'static str, ty: ColumnType) -> Column {
    Column {
        name,
        ty,
        allowed: None,
    }
}

/// The allow-list of columns criteria may name. Identity and contact columns (`id`,
/// `full_name`, `email`, `phone`) are deliberately absent.
pub const COLUMNS: &[Column] = &[
    Column {
        name: "gender",
        ty: ColumnType::Text,
        allowed: Some(GENDERS),
    },
    Column {
        name: "kyc_status",
        ty: ColumnType::Text,
        allowed: Some(KYC_STATUSES),
    },
    column("segment", ColumnType::Text),
    column("occupation", ColumnType::Text),
    column("annual_income", ColumnType::Numeric),
    column("credit_score", ColumnType::Integer),
    column("state", ColumnType::Text),
    column("city", ColumnType::Text),
    column("pin_code", ColumnType::Text),
    Column {
        name: "marital_status",
        ty: ColumnType::Text,
        allowed: Some(MARITAL_STATUSES),
    },
    column("account_age_months", ColumnType::Integer),
    column("preferred_language", ColumnType::Text),
    column("is_active", ColumnType::Boolean),
    column("dob", ColumnType::Date),
];

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// `eq`: equal.
    Eq,
    /// `ne`: not equal (NULL counts as not equal).
    Ne,
    /// `gt`: greater than.
    Gt,
    /// `gte`: greater than or equal.
    Gte,
    /// `lt`: less than.
    Lt,
    /// `lte`: less than or equal.
    Lte,
    /// `in`: one of a non-empty list.
    In,
    /// `not_in`: none of a non-empty list (NULL counts as none).
    NotIn,
    /// `between`: `[low, high]`, both inclusive.
    Between,
    /// `exists`: `true` for NOT NULL, `false` for NULL.
    Exists,
}

impl Operator {
    /// Every operator.
    pub const ALL: [Operator; 10] = [
        Self::Eq,
        Self::Ne,
        Self::Gt,
        Self::Gte,
        Self::Lt,
        Self::Lte,
        Self::In,
        Self::NotIn,
        Self::Between,
        Self::Exists,
    ];

    /// The operator's name in criteria.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Eq => "eq",
            Self::Ne => "ne",
            Self::Gt => "gt",
            Self::Gte => "gte",
            Self::Lt => "lt",
            Self::Lte => "lte",
            Self::In => "in",
            Self::NotIn => "not_in",
            Self::Between => "between",
            Self::Exists => "exists",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|op| op.as_str() == name)
    }

    const fn is_ordering(self) -> bool {
        matches!(
            self,
            Self::Gt | Self::Gte | Self::Lt | Self::Lte | Self::Between
        )
    }

    const fn sql(self) -> &'static str {
        match self {
            Self::Eq | Self::Ne | Self::In | Self::NotIn => "=",
            Self::Gt => ">",
            Self::Gte => ">=",
            Self::Lt => "<",
            Self::Lte => "<=",
            Self::Between | Self::Exists => "",
        }
    }
}

/// What a comparison reads: an allow-listed column or a key of `attributes`.
#[derive(Debug, Clone, PartialEq)]
pub enum Field {
    /// A column of [`COLUMNS`].
    Column(&'static Column),
    /// `attributes.<key>`.
    Attribute(String),
}

/// A value checked against its field's type.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    /// Text.
    Text(String),
    /// An integer.
    Integer(i64),
    /// An exact decimal, as its text (`"650000"`, `"0.25"`).
    Numeric(String),
    /// A calendar date.
    Date(NaiveDate),
    /// A boolean.
    Boolean(bool),
    /// Any JSON scalar, compared with an `attributes` value as `jsonb`.
    Json(Value),
}

/// The operand of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// One value.
    One(Scalar),
    /// `in` / `not_in`: a non-empty list of values of one type.
    List(Vec<Scalar>),
    /// `between`: low and high.
    Range(Scalar, Scalar),
    /// `exists`.
    Presence(bool),
}

/// A parsed, type-checked criteria tree.
#[derive(Debug, Clone, PartialEq)]
pub enum Criterion {
    /// Every child holds (an empty list holds for everyone).
    All(Vec<Criterion>),
    /// At least one child holds.
    Any(Vec<Criterion>),
    /// The child does not hold.
    Not(Box<Criterion>),
    /// One comparison.
    Compare {
        /// What is compared.
        field: Field,
        /// How.
        op: Operator,
        /// With what.
        operand: Operand,
    },
}

/// Criteria that cannot be used, with a JSON Pointer into the criteria document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{pointer}: {detail}")]
pub struct CriteriaError {
    /// RFC 6901 pointer to the offending key or value (`""` for the document itself).
    pub pointer: String,
    /// What is wrong, and what would be accepted.
    pub detail: String,
}

/// A bind parameter of the compiled SQL; its placeholder casts it to the right SQL type.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    /// `$n::text` (also numerics, as `$n::text::numeric`).
    Text(String),
    /// `$n::text[]` (also numerics, as `$n::text[]::numeric[]`).
    TextList(Vec<String>),
    /// `$n::int8`.
    Integer(i64),
    /// `$n::int8[]`.
    IntegerList(Vec<i64>),
    /// `$n::date`.
    Date(NaiveDate),
    /// `$n::date[]`.
    DateList(Vec<NaiveDate>),
    /// `$n::bool`.
    Boolean(bool),
    /// `$n::bool[]`.
    BooleanList(Vec<bool>),
    /// `$n::jsonb`.
    Json(Value),
    /// `$n::jsonb[]`.
    JsonList(Vec<Value>),
}

impl Param {
    /// The value as `tokio-postgres` binds it.
    pub fn as_sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            Self::Text(v) => v,
            Self::TextList(v) => v,
            Self::Integer(v) => v,
            Self::IntegerList(v) => v,
            Self::Date(v) => v,
            Self::DateList(v) => v,
            Self::Boolean(v) => v,
            Self::BooleanList(v) => v,
            Self::Json(v) => v,
            Self::JsonList(v) => v,
        }
    }
}

/// A compiled predicate: SQL over the alias `c` (a `customers` row) and its parameters, the
/// first of which is `$first_param`.
#[derive(Debug, Clone, PartialEq)]
pub struct Compiled {
    /// A boolean SQL expression.
    pub sql: String,
    /// Its parameters, in placeholder order.
    pub params: Vec<Param>,
}

impl Compiled {
    /// The parameters as `tokio-postgres` takes them, after `leading` parameters of the
    /// enclosing statement.
    pub fn bind<'a>(&'a self, leading: &[&'a (dyn ToSql + Sync)]) -> Vec<&'a (dyn ToSql + Sync)> {
        let mut all = leading.to_vec();
        all.extend(self.params.iter().map(Param::as_sql));
        all
    }
}

/// Parsed criteria: the tree plus whether it names `is_active`.
#[derive(Debug, Clone, PartialEq)]
pub struct Criteria {
    root: Criterion,
    names_is_active: bool,
}

impl Criteria {
    /// Parses the `selection_criteria` of a request body.
    ///
    /// # Errors
    /// 422 ([`crate::error::ApiError::Unprocessable`]) with a JSON Pointer under
    /// `/selection_criteria`.
    pub fn from_request(criteria: &Value) -> Result<Self, crate::error::ApiError> {
        Self::parse(criteria).map_err(|err| crate::error::ApiError::Unprocessable {
            detail: format!("selection_criteria: {}", err.detail),
            errors: vec![crate::error::FieldError {
                pointer: format!("/selection_criteria{}", err.pointer),
                detail: err.detail,
            }],
        })
    }

    /// Parses and type-checks a criteria document (a JSON object).
    ///
    /// # Errors
    /// [`CriteriaError`] naming the first offending key or value.
    pub fn parse(document: &Value) -> Result<Self, CriteriaError> {
        let mut parser = Parser::default();
        let root = parser.object(document, "", 0)?;
        Ok(Self {
            root,
            names_is_active: parser.names_is_active,
        })
    }

    /// The parsed tree.
    pub fn root(&self) -> &Criterion {
        &self.root
    }

    /// Compiles to SQL whose first placeholder is `$first_param`. Unless the criteria name
    /// `is_active`, the predicate also requires an active customer.
    pub fn compile(&self, first_param: usize) -> Compiled {
        let mut out = Emitter {
            sql: String::new(),
            params: Vec::new(),
            next: first_param,
        };
        out.criterion(&self.root);
        if !self.names_is_active {
            out.sql = format!("({}) and coalesce(c.is_active, true)", out.sql);
        }
        Compiled {
            sql: out.sql,
            params: out.params,
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn compile(criteria: Value) -> Compiled {
        Criteria::parse(&criteria)
            .unwrap_or_else(|e| panic!("{criteria}: {e}"))
            .compile(1)
    }

    fn refused(criteria: Value) -> CriteriaError {
        Criteria::parse(&criteria).expect_err("must be refused")
    }

    #[test]
    fn bare_values_mean_eq_and_in_and_inactive_customers_are_left_out() {
        let c = compile(json!({"segment": "gold"}));
        assert_eq!(
            c.sql,
            "(coalesce(c.segment = $1::text, false)) and coalesce(c.is_active, true)"
        );
        assert_eq!(c.params, [Param::Text("gold".into())]);
        let c = compile(json!({"state": ["KA", "MH"]}));
        assert!(c.sql.contains("c.state = any($1::text[])"), "{}", c.sql);
        let c = compile(json!({"is_active": false}));
        assert_eq!(c.sql, "coalesce(c.is_active = $1::bool, false)");
    }

    #[test]
    fn every_operator_compiles_with_typed_placeholders() {
        let cases = [
            (
                json!({"credit_score": {"eq": 700}}),
                "coalesce(c.credit_score = $1::int8, false)",
            ),
            (
                json!({"credit_score": {"ne": 700}}),
                "(not coalesce(c.credit_score = $1::int8, false))",
            ),
            (
                json!({"credit_score": {"gt": 700}}),
                "coalesce(c.credit_score > $1::int8, false)",
            ),
            (
                json!({"credit_score": {"gte": 700}}),
                "coalesce(c.credit_score >= $1::int8, false)",
            ),
            (
                json!({"credit_score": {"lt": 700}}),
                "coalesce(c.credit_score < $1::int8, false)",
            ),
            (
                json!({"credit_score": {"lte": 700}}),
                "coalesce(c.credit_score <= $1::int8, false)",
            ),
            (
                json!({"credit_score": {"in": [1, 2]}}),
                "coalesce(c.credit_score = any($1::int8[]), false)",
            ),
            (
                json!({"credit_score": {"not_in": [1, 2]}}),
                "(not coalesce(c.credit_score = any($1::int8[]), false))",
            ),
            (
                json!({"annual_income": {"between": [1, 2.5]}}),
                "coalesce(c.annual_income between $1::text::numeric and $2::text::numeric, false)",
            ),
            (
                json!({"dob": {"lt": "1990-01-01"}}),
                "coalesce(c.dob < $1::date, false)",
            ),
            (json!({"city": {"exists": true}}), "(c.city is not null)"),
            (json!({"city": {"exists": false}}), "(c.city is null)"),
            (
                json!({"attributes.tier": "gold"}),
                "coalesce((c.attributes -> $1::text) = $2::jsonb, false)",
            ),
        ];
        for (criteria, sql) in cases {
            let compiled = compile(criteria.clone());
            assert_eq!(
                compiled.sql,
                format!("({sql}) and coalesce(c.is_active, true)"),
                "{criteria}"
            );
        }
        let c = compile(json!({"attributes.limit": {"gte": 5000}}));
        assert!(
            c.sql
                .contains("jsonb_typeof(c.attributes -> $1::text) = 'number'")
        );
        assert!(c.sql.contains(">= $2::text::numeric"));
        assert_eq!(c.params[1], Param::Text("5000".into()));
    }

    #[test]
    fn compositions_nest_and_parameters_continue_from_the_first() {
        let c = Criteria::parse(&json!({
            "any": [{"segment": "gold"}, {"segment": "platinum"}],
            "not": {"kyc_status": "rejected"},
            "all": [{"credit_score": {"gte": 600}}, {"credit_score": {"lt": 900}}]
        }))
        .expect("valid")
        .compile(5);
        assert_eq!(
            c.sql,
            "(((coalesce(c.credit_score >= $5::int8, false) and coalesce(c.credit_score < $6::int8, false)) \
             and (coalesce(c.segment = $7::text, false) or coalesce(c.segment = $8::text, false)) \
             and (not coalesce(c.kyc_status = $9::text, false)))) and coalesce(c.is_active, true)"
        );
        assert_eq!(c.params.len(), 5);
        let c = compile(json!({"segment": "gold", "credit_score": {"gte": 1, "lte": 2}}));
        assert_eq!(c.params.len(), 3);
    }

    #[test]
    fn type_errors_name_the_key() {
        let cases = [
            (json!({"credit_score": "high"}), "/credit_score"),
            (json!({"credit_score": 1.5}), "/credit_score"),
            (json!({"annual_income": "lots"}), "/annual_income"),
            (json!({"dob": "01/02/1990"}), "/dob"),
            (json!({"is_active": 1}), "/is_active"),
            (json!({"segment": 5}), "/segment"),
            (json!({"segment": {"gte": "a"}}), "/segment/gte"),
            (json!({"gender": "m"}), "/gender"),
            (
                json!({"credit_score": {"in": [1, "2"]}}),
                "/credit_score/in/1",
            ),
            (
                json!({"credit_score": {"between": [1, 2, 3]}}),
                "/credit_score/between",
            ),
            (json!({"city": {"exists": "yes"}}), "/city/exists"),
            (json!({"not": [{"segment": "gold"}]}), "/not"),
            (json!({"all": {"segment": "gold"}}), "/all"),
            (json!({"any": [5]}), "/any/0"),
            (json!({"attributes.": 1}), "/attributes."),
            (json!({"attributes.a/b": 1}), "/attributes.a~1b"),
            (json!({"attributes.tier": [[1]]}), "/attributes.tier/0"),
            (json!({"segment": {}}), "/segment"),
            (json!("gold"), ""),
        ];
        for (criteria, pointer) in cases {
            assert_eq!(refused(criteria.clone()).pointer, pointer, "{criteria}");
        }
    }

    #[test]
    fn limits_on_depth_nodes_lists_and_strings() {
        let deep =
            (0..=MAX_DEPTH).fold(json!({"segment": "gold"}), |inner, _| json!({"not": inner}));
        assert!(refused(deep).detail.contains("deeper"));
        let ok = (0..MAX_DEPTH).fold(json!({"segment": "gold"}), |inner, _| json!({"not": inner}));
        assert!(Criteria::parse(&ok).is_ok());
        let many: Vec<Value> = (0..=MAX_NODES)
            .map(|i| json!({"credit_score": i}))
            .collect();
        assert!(refused(json!({"any": many})).detail.contains("conditions"));
        let long: Vec<i64> = (0..=MAX_LIST_LEN as i64).collect();
        assert_eq!(
            refused(json!({"credit_score": long})).pointer,
            "/credit_score"
        );
        assert_eq!(
            refused(json!({"segment": "x".repeat(MAX_TEXT_LEN + 1)})).pointer,
            "/segment"
        );
    }

    #[test]
    fn injection_attempts_are_refused_or_bound() {
        for key in [
            "1=1 OR segment",
            "segment; drop table users",
            "c.segment",
            "SEGMENT",
        ] {
            assert_eq!(refused(json!({key: "x"})).pointer, format!("/{key}"));
        }
        let c = compile(json!({"segment": {"eq": "x'; UPDATE users SET is_super_admin=true; --"}}));
        assert!(!c.sql.contains("UPDATE") && !c.sql.contains('\''.to_string().repeat(2).as_str()));
        assert_eq!(
            c.params,
            [Param::Text(
                "x'; UPDATE users SET is_super_admin=true; --".into()
            )]
        );
    }

    /// Identifiers and keywords the compiler may emit; anything else in the SQL is a `$n`
    /// placeholder, a cast, punctuation or one of the quoted `jsonb_typeof` results.
    const EMITTED: &[&str] = &[
        "c",
        "and",
        "or",
        "not",
        "coalesce",
        "false",
        "true",
        "any",
        "between",
        "is",
        "null",
        "case",
        "when",
        "then",
        "end",
        "jsonb_typeof",
        "attributes",
        "text",
        "numeric",
        "int8",
        "date",
        "bool",
        "jsonb",
    ];

    fn only_allowed_tokens(sql: &str) -> Result<(), String> {
        let without_literals = sql.replace("'number'", " ").replace("'string'", " ");
        if without_literals.contains('\'')
            || without_literals.contains(';')
            || without_literals.contains("--")
        {
            return Err(format!(
                "unexpected literal or statement separator in {sql}"
            ));
        }
        let mut chars = without_literals.chars().peekable();
        while let Some(ch) = chars.next() {
            if ch == '$' {
                let digits: String =
                    std::iter::from_fn(|| chars.next_if(char::is_ascii_digit)).collect();
                if digits.is_empty() {
                    return Err(format!("bare $ in {sql}"));
                }
            } else if ch.is_ascii_alphabetic() || ch == '_' {
                let mut word = ch.to_string();
                word.extend(std::iter::from_fn(|| {
                    chars.next_if(|c| c.is_ascii_alphanumeric() || *c == '_')
                }));
                let allowed =
                    EMITTED.contains(&word.as_str()) || COLUMNS.iter().any(|c| c.name == word);
                if !allowed {
                    return Err(format!("identifier {word:?} in {sql}"));
                }
            } else if ch.is_ascii_digit() {
                return Err(format!("numeric literal in {sql}"));
            } else if !" ().,=<>-:[]".contains(ch) {
                return Err(format!("unexpected {ch:?} in {sql}"));
            }
        }
        Ok(())
    }

    fn any_text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z_]{1,12}",
            "\\PC{0,40}",
            Just("x' OR '1'='1".to_owned()),
            Just("'; drop table users; --".to_owned()),
            Just("$1".to_owned()),
        ]
    }

    fn any_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            any_text().prop_map(Value::String),
            any::<i32>().prop_map(|n| json!(n)),
            (-1.0e9f64..1.0e9).prop_map(|n| json!(n)),
            any::<bool>().prop_map(Value::Bool),
            Just(json!("1990-05-17")),
            Just(Value::Null),
        ]
    }

    fn any_key() -> impl Strategy<Value = String> {
        let columns: Vec<String> = COLUMNS.iter().map(|c| c.name.to_owned()).collect();
        prop_oneof![
            4 => proptest::sample::select(columns),
            1 => "[a-z_]{1,10}".prop_map(|k| format!("attributes.{k}")),
            1 => any_text(),
        ]
    }

    fn any_condition() -> impl Strategy<Value = Value> {
        let ops = proptest::sample::select(Operator::ALL.map(Operator::as_str).to_vec());
        prop_oneof![
            any_value(),
            proptest::collection::vec(any_value(), 0..4).prop_map(Value::Array),
            (
                ops,
                prop_oneof![
                    any_value(),
                    proptest::collection::vec(any_value(), 0..3).prop_map(Value::Array)
                ]
            )
                .prop_map(|(op, v)| json!({op: v})),
        ]
    }

    fn any_criteria() -> impl Strategy<Value = Value> {
        let leaf = proptest::collection::btree_map(any_key(), any_condition(), 0..4)
            .prop_map(|m| Value::Object(m.into_iter().collect()));
        leaf.prop_recursive(4, 64, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 1..4).prop_map(|v| json!({"any": v})),
                proptest::collection::vec(inner.clone(), 1..4).prop_map(|v| json!({"all": v})),
                inner.prop_map(|v| json!({"not": v})),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn generated_sql_holds_only_allow_listed_identifiers_and_placeholders(criteria in any_criteria()) {
            if let Ok(parsed) = Criteria::parse(&criteria) {
                let compiled = parsed.compile(3);
                prop_assert_eq!(only_allowed_tokens(&compiled.sql), Ok(()));
                // Every parameter is used, and nothing else is referenced.
                let mut used: Vec<usize> = compiled
                    .sql
                    .split('$')
                    .skip(1)
                    .filter_map(|rest| rest.split(':').next()?.parse().ok())
                    .collect();
                used.sort_unstable();
                used.dedup();
                let expected: Vec<usize> = (3..3 + compiled.params.len()).collect();
                prop_assert_eq!(used, expected);
            }
        }
    }
}
