//! The SQL emitter of the criteria language: the typed tree to a predicate over `customers c`
//! with only allow-listed column names, fixed operators and `$n` placeholders.

use std::fmt::Write as _;

use serde_json::Value;

use super::{Criterion, Field, Operand, Operator, Param, Scalar};

pub(super) struct Emitter {
    pub(super) sql: String,
    pub(super) params: Vec<Param>,
    pub(super) next: usize,
}

impl Emitter {
    /// Adds a parameter; returns its placeholder with the cast that types it.
    fn param(&mut self, param: Param, cast: &str) -> String {
        let placeholder = format!("${}{cast}", self.next);
        self.next += 1;
        self.params.push(param);
        placeholder
    }

    pub(super) fn criterion(&mut self, criterion: &Criterion) {
        match criterion {
            Criterion::All(children) | Criterion::Any(children) if children.is_empty() => {
                self.sql
                    .push_str(if matches!(criterion, Criterion::All(_)) {
                        "true"
                    } else {
                        "false"
                    });
            }
            Criterion::All(children) | Criterion::Any(children) => {
                let joiner = if matches!(criterion, Criterion::All(_)) {
                    " and "
                } else {
                    " or "
                };
                self.sql.push('(');
                for (i, child) in children.iter().enumerate() {
                    if i > 0 {
                        self.sql.push_str(joiner);
                    }
                    self.criterion(child);
                }
                self.sql.push(')');
            }
            Criterion::Not(child) => {
                self.sql.push_str("(not ");
                self.criterion(child);
                self.sql.push(')');
            }
            Criterion::Compare { field, op, operand } => self.compare(field, *op, operand),
        }
    }

    /// The SQL operand for a field: the column, or the `attributes` value typed for `op`.
    fn field_sql(&mut self, field: &Field, op: Operator, operand: &Operand) -> String {
        match field {
            Field::Column(column) => format!("c.{}", column.name),
            Field::Attribute(key) => {
                let key = self.param(Param::Text(key.clone()), "::text");
                let sample = match operand {
                    Operand::One(s) | Operand::Range(s, _) => Some(s),
                    Operand::List(_) | Operand::Presence(_) => None,
                };
                match (op.is_ordering(), sample) {
                    (true, Some(Scalar::Json(Value::Number(_)))) => format!(
                        "(case when jsonb_typeof(c.attributes -> {key}) = 'number' then (c.attributes ->> {key})::numeric end)"
                    ),
                    (true, _) => format!(
                        "(case when jsonb_typeof(c.attributes -> {key}) = 'string' then c.attributes ->> {key} end)"
                    ),
                    (false, _) => format!("(c.attributes -> {key})"),
                }
            }
        }
    }

    /// One value as a placeholder; attributes compare as `jsonb` for equality and as numeric
    /// or text when ordered.
    fn value_sql(&mut self, scalar: &Scalar, op: Operator) -> String {
        match scalar {
            Scalar::Text(s) => self.param(Param::Text(s.clone()), "::text"),
            Scalar::Integer(i) => self.param(Param::Integer(*i), "::int8"),
            Scalar::Numeric(n) => self.param(Param::Text(n.clone()), "::text::numeric"),
            Scalar::Date(d) => self.param(Param::Date(*d), "::date"),
            Scalar::Boolean(b) => self.param(Param::Boolean(*b), "::bool"),
            Scalar::Json(Value::Number(n)) if op.is_ordering() => {
                self.param(Param::Text(n.to_string()), "::text::numeric")
            }
            Scalar::Json(Value::String(s)) if op.is_ordering() => {
                self.param(Param::Text(s.clone()), "::text")
            }
            Scalar::Json(v) => self.param(Param::Json(v.clone()), "::jsonb"),
        }
    }

    fn list_sql(&mut self, list: &[Scalar]) -> String {
        let (param, cast) = match list.first() {
            Some(Scalar::Integer(_)) => (
                Param::IntegerList(
                    list.iter()
                        .filter_map(|s| match s {
                            Scalar::Integer(i) => Some(*i),
                            _ => None,
                        })
                        .collect(),
                ),
                "::int8[]",
            ),
            Some(Scalar::Numeric(_)) => (
                Param::TextList(
                    list.iter()
                        .filter_map(|s| match s {
                            Scalar::Numeric(n) => Some(n.clone()),
                            _ => None,
                        })
                        .collect(),
                ),
                "::text[]::numeric[]",
            ),
            Some(Scalar::Date(_)) => (
                Param::DateList(
                    list.iter()
                        .filter_map(|s| match s {
                            Scalar::Date(d) => Some(*d),
                            _ => None,
                        })
                        .collect(),
                ),
                "::date[]",
            ),
            Some(Scalar::Boolean(_)) => (
                Param::BooleanList(
                    list.iter()
                        .filter_map(|s| match s {
                            Scalar::Boolean(b) => Some(*b),
                            _ => None,
                        })
                        .collect(),
                ),
                "::bool[]",
            ),
            Some(Scalar::Json(_)) => (
                Param::JsonList(
                    list.iter()
                        .filter_map(|s| match s {
                            Scalar::Json(v) => Some(v.clone()),
                            _ => None,
                        })
                        .collect(),
                ),
                "::jsonb[]",
            ),
            Some(Scalar::Text(_)) | None => (
                Param::TextList(
                    list.iter()
                        .filter_map(|s| match s {
                            Scalar::Text(t) => Some(t.clone()),
                            _ => None,
                        })
                        .collect(),
                ),
                "::text[]",
            ),
        };
        self.param(param, cast)
    }

    fn compare(&mut self, field: &Field, op: Operator, operand: &Operand) {
        let lhs = self.field_sql(field, op, operand);
        let sql = match (op, operand) {
            (Operator::Exists, Operand::Presence(true)) => format!("({lhs} is not null)"),
            (Operator::Exists, _) => format!("({lhs} is null)"),
            (Operator::In | Operator::NotIn, Operand::List(list)) => {
                let rhs = self.list_sql(list);
                let test = format!("coalesce({lhs} = any({rhs}), false)");
                if op == Operator::NotIn {
                    format!("(not {test})")
                } else {
                    test
                }
            }
            (Operator::Between, Operand::Range(low, high)) => {
                let low = self.value_sql(low, op);
                let high = self.value_sql(high, op);
                format!("coalesce({lhs} between {low} and {high}, false)")
            }
            (_, Operand::One(value)) => {
                let rhs = self.value_sql(value, op);
                let test = format!("coalesce({lhs} {} {rhs}, false)", op.sql());
                if op == Operator::Ne {
                    format!("(not {test})")
                } else {
                    test
                }
            }
            // The parser pairs every operator with its operand shape.
            _ => "false".to_owned(),
        };
        let _ = write!(self.sql, "{sql}");
    }
}
