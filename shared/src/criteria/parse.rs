//! The parser of the criteria language: a JSON document to the typed tree ([`Criterion`]),
//! each value checked against its column's type, every error with the JSON Pointer of the
//! offending key.

use chrono::NaiveDate;
use serde_json::Value;

use super::{
    COLUMNS, ColumnType, CriteriaError, Criterion, Field, MAX_ATTRIBUTE_KEY_LEN, MAX_DEPTH,
    MAX_LIST_LEN, MAX_NODES, MAX_TEXT_LEN, Operand, Operator, Scalar,
};
use crate::error::pointer_token;

fn error(pointer: &str, detail: impl Into<String>) -> CriteriaError {
    CriteriaError {
        pointer: pointer.to_owned(),
        detail: detail.into(),
    }
}

#[derive(Default)]
pub(super) struct Parser {
    nodes: usize,
    pub(super) names_is_active: bool,
}

impl Parser {
    fn count(&mut self, pointer: &str) -> Result<(), CriteriaError> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(error(
                pointer,
                format!("criteria have more than {MAX_NODES} conditions"),
            ));
        }
        Ok(())
    }

    /// An object: its keys ANDed.
    pub(super) fn object(
        &mut self,
        value: &Value,
        pointer: &str,
        depth: usize,
    ) -> Result<Criterion, CriteriaError> {
        let Value::Object(map) = value else {
            return Err(error(pointer, "must be a JSON object"));
        };
        if depth > MAX_DEPTH {
            return Err(error(
                pointer,
                format!("criteria nest deeper than {MAX_DEPTH} levels"),
            ));
        }
        let mut children = Vec::with_capacity(map.len());
        for (key, value) in map {
            let pointer = format!("{pointer}/{}", pointer_token(key));
            children.push(self.entry(key, value, &pointer, depth)?);
        }
        Ok(match children.len() {
            1 => children.remove(0),
            _ => Criterion::All(children),
        })
    }

    fn entry(
        &mut self,
        key: &str,
        value: &Value,
        pointer: &str,
        depth: usize,
    ) -> Result<Criterion, CriteriaError> {
        match key {
            "all" | "any" => {
                self.count(pointer)?;
                let Value::Array(items) = value else {
                    return Err(error(
                        pointer,
                        format!("`{key}` takes an array of criteria objects"),
                    ));
                };
                if items.is_empty() {
                    return Err(error(
                        pointer,
                        format!("`{key}` needs at least one criteria object"),
                    ));
                }
                let children = items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| self.object(item, &format!("{pointer}/{i}"), depth + 1))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(if key == "all" {
                    Criterion::All(children)
                } else {
                    Criterion::Any(children)
                })
            }
            "not" => {
                self.count(pointer)?;
                if !value.is_object() {
                    return Err(error(pointer, "`not` takes one criteria object"));
                }
                Ok(Criterion::Not(Box::new(self.object(
                    value,
                    pointer,
                    depth + 1,
                )?)))
            }
            _ => {
                let field = field(key, pointer)?;
                if matches!(&field, Field::Column(c) if c.name == "is_active") {
                    self.names_is_active = true;
                }
                self.condition(field, value, pointer)
            }
        }
    }

    /// The value of a field key: an operator object, a bare scalar (`eq`) or array (`in`).
    fn condition(
        &mut self,
        field: Field,
        value: &Value,
        pointer: &str,
    ) -> Result<Criterion, CriteriaError> {
        match value {
            Value::Object(ops) => {
                if ops.is_empty() {
                    return Err(error(
                        pointer,
                        "needs at least one operator, e.g. {\"eq\": ...}",
                    ));
                }
                let mut comparisons = Vec::with_capacity(ops.len());
                for (name, operand) in ops {
                    let pointer = format!("{pointer}/{}", pointer_token(name));
                    let op = Operator::parse(name).ok_or_else(|| {
                        error(
                            &pointer,
                            format!(
                                "unknown operator; use one of {}",
                                Operator::ALL.map(Operator::as_str).join(", ")
                            ),
                        )
                    })?;
                    comparisons.push(self.compare(field.clone(), op, operand, &pointer)?);
                }
                Ok(match comparisons.len() {
                    1 => comparisons.remove(0),
                    _ => Criterion::All(comparisons),
                })
            }
            Value::Array(_) => self.compare(field, Operator::In, value, pointer),
            _ => self.compare(field, Operator::Eq, value, pointer),
        }
    }

    fn compare(
        &mut self,
        field: Field,
        op: Operator,
        value: &Value,
        pointer: &str,
    ) -> Result<Criterion, CriteriaError> {
        self.count(pointer)?;
        let operand = match op {
            Operator::Exists => match value {
                Value::Bool(b) => Operand::Presence(*b),
                _ => return Err(error(pointer, "`exists` takes true or false")),
            },
            Operator::In | Operator::NotIn => {
                let Value::Array(items) = value else {
                    return Err(error(
                        pointer,
                        format!("`{}` takes an array of values", op.as_str()),
                    ));
                };
                if items.is_empty() || items.len() > MAX_LIST_LEN {
                    return Err(error(
                        pointer,
                        format!("list must hold 1 to {MAX_LIST_LEN} values"),
                    ));
                }
                let list = items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| scalar(&field, op, item, &format!("{pointer}/{i}")))
                    .collect::<Result<Vec<_>, _>>()?;
                if let Field::Attribute(_) = field {
                    // jsonb lists compare any JSON scalar, so mixed types are fine there.
                } else if list
                    .windows(2)
                    .any(|w| std::mem::discriminant(&w[0]) != std::mem::discriminant(&w[1]))
                {
                    return Err(error(pointer, "list values must all have one type"));
                }
                Operand::List(list)
            }
            Operator::Between => {
                let Some([low, high]) = value
                    .as_array()
                    .and_then(|a| <&[Value; 2]>::try_from(a.as_slice()).ok())
                else {
                    return Err(error(pointer, "`between` takes [low, high]"));
                };
                let low = scalar(&field, op, low, &format!("{pointer}/0"))?;
                let high = scalar(&field, op, high, &format!("{pointer}/1"))?;
                if std::mem::discriminant(&low) != std::mem::discriminant(&high) {
                    return Err(error(pointer, "low and high must have one type"));
                }
                Operand::Range(low, high)
            }
            _ => Operand::One(scalar(&field, op, value, pointer)?),
        };
        Ok(Criterion::Compare { field, op, operand })
    }
}

/// Resolves a key to an allow-listed field.
fn field(key: &str, pointer: &str) -> Result<Field, CriteriaError> {
    if let Some(name) = key.strip_prefix("attributes.") {
        let valid = !name.is_empty()
            && name.chars().count() <= MAX_ATTRIBUTE_KEY_LEN
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(error(
                pointer,
                format!(
                    "attribute keys are 1 to {MAX_ATTRIBUTE_KEY_LEN} letters, digits or underscores"
                ),
            ));
        }
        return Ok(Field::Attribute(name.to_owned()));
    }
    COLUMNS
        .iter()
        .find(|c| c.name == key)
        .map(Field::Column)
        .ok_or_else(|| {
            error(
                pointer,
                format!(
                    "unknown field; use all, any, not, attributes.<key> or one of {}",
                    COLUMNS
                        .iter()
                        .map(|c| c.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })
}

/// Checks one value against its field and operator.
fn scalar(
    field: &Field,
    op: Operator,
    value: &Value,
    pointer: &str,
) -> Result<Scalar, CriteriaError> {
    if let Value::String(s) = value
        && s.chars().count() > MAX_TEXT_LEN
    {
        return Err(error(
            pointer,
            format!("strings are at most {MAX_TEXT_LEN} characters"),
        ));
    }
    let column = match field {
        Field::Attribute(_) => {
            return match value {
                Value::Number(_) | Value::String(_) => Ok(Scalar::Json(value.clone())),
                Value::Bool(_) if !op.is_ordering() => Ok(Scalar::Json(value.clone())),
                Value::Bool(_) => Err(error(pointer, "ordering compares numbers or strings")),
                Value::Null => Err(error(
                    pointer,
                    "null is not a value; use {\"exists\": false}",
                )),
                _ => Err(error(pointer, "must be a number, string or boolean")),
            };
        }
        Field::Column(column) => column,
    };
    let expected = |what: &str| error(pointer, format!("`{}` takes {what}", column.name));
    if op.is_ordering() && matches!(column.ty, ColumnType::Text | ColumnType::Boolean) {
        return Err(error(
            pointer,
            format!(
                "`{}` cannot be ordered; use eq, ne, in, not_in or exists",
                column.name
            ),
        ));
    }
    match (column.ty, value) {
        (ColumnType::Text, Value::String(s)) => match column.allowed {
            Some(allowed) if !allowed.contains(&s.as_str()) => Err(error(
                pointer,
                format!("`{}` is one of {}", column.name, allowed.join(", ")),
            )),
            _ => Ok(Scalar::Text(s.clone())),
        },
        (ColumnType::Text, _) => Err(expected("strings")),
        (ColumnType::Integer, Value::Number(n)) => n
            .as_i64()
            .map(Scalar::Integer)
            .ok_or_else(|| expected("whole numbers")),
        (ColumnType::Integer, _) => Err(expected("whole numbers")),
        (ColumnType::Numeric, Value::Number(n)) => Ok(Scalar::Numeric(n.to_string())),
        (ColumnType::Numeric, _) => Err(expected("numbers")),
        (ColumnType::Date, Value::String(s)) => NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map(Scalar::Date)
            .map_err(|_| expected("dates as YYYY-MM-DD")),
        (ColumnType::Date, _) => Err(expected("dates as YYYY-MM-DD")),
        (ColumnType::Boolean, Value::Bool(b)) => Ok(Scalar::Boolean(*b)),
        (ColumnType::Boolean, _) => Err(expected("true or false")),
    }
}
