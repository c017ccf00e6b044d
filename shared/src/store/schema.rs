//! Creates tables from `template.yaml`, the single source of truth for their definitions, so
//! the local run and the tests can never drift from what `sam deploy` creates.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_dynamodb::Client;
use serde_yaml::Value;

use super::{classify, StoreError};
use crate::config::TableNames;

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("template: {0}")]
    Template(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One `AWS::DynamoDB::Table` of the template, with the environment variable that names it.
#[derive(Clone, Debug, PartialEq)]
pub struct TableDefinition {
    pub logical_id: String,
    pub env_var: String,
    pub attributes: Vec<(String, String)>,
    pub key_schema: Vec<(String, String)>,
    pub indexes: Vec<IndexDefinition>,
    pub ttl_attribute: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct IndexDefinition {
    pub name: String,
    pub key_schema: Vec<(String, String)>,
    pub projection: String,
}

fn template_err(message: impl Into<String>) -> SchemaError {
    SchemaError::Template(message.into())
}

fn str_at<'a>(value: &'a Value, key: &str) -> Result<&'a str, SchemaError> {
    value
        .get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| template_err(format!("missing string {key}")))
}

fn pairs(value: Option<&Value>, a: &str, b: &str) -> Result<Vec<(String, String)>, SchemaError> {
    value
        .and_then(Value::as_sequence)
        .ok_or_else(|| template_err(format!("missing list of {a}/{b}")))?
        .iter()
        .map(|v| Ok((str_at(v, a)?.to_owned(), str_at(v, b)?.to_owned())))
        .collect()
}

/// Which environment variable refers to each logical id (`VAR: !Ref LogicalId`), searched in
/// `Globals.Function.Environment.Variables`.
fn env_refs(template: &Value) -> BTreeMap<String, String> {
    let mut refs = BTreeMap::new();
    let vars = template
        .get("Globals")
        .and_then(|g| g.get("Function"))
        .and_then(|f| f.get("Environment"))
        .and_then(|e| e.get("Variables"))
        .and_then(Value::as_mapping);
    for (name, value) in vars.into_iter().flatten() {
        if let (Some(name), Value::Tagged(tagged)) = (name.as_str(), value) {
            if tagged.tag == "!Ref" {
                if let Some(target) = tagged.value.as_str() {
                    refs.insert(target.to_owned(), name.to_owned());
                }
            }
        }
    }
    refs
}

pub fn parse_template(yaml: &str) -> Result<Vec<TableDefinition>, SchemaError> {
    let template: Value =
        serde_yaml::from_str(yaml).map_err(|e| template_err(format!("not YAML: {e}")))?;
    let refs = env_refs(&template);
    let resources = template
        .get("Resources")
        .and_then(Value::as_mapping)
        .ok_or_else(|| template_err("no Resources"))?;
    let mut tables = Vec::new();
    for (id, resource) in resources {
        if resource.get("Type").and_then(Value::as_str) != Some("AWS::DynamoDB::Table") {
            continue;
        }
        let logical_id = id
            .as_str()
            .ok_or_else(|| template_err("non-string logical id"))?;
        let props = resource
            .get("Properties")
            .ok_or_else(|| template_err(format!("{logical_id}: no Properties")))?;
        let env_var = refs
            .get(logical_id)
            .ok_or_else(|| {
                template_err(format!(
                    "{logical_id}: no Globals environment variable refers to it"
                ))
            })?
            .clone();
        let indexes = props
            .get("GlobalSecondaryIndexes")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
            .map(|gsi| {
                Ok(IndexDefinition {
                    name: str_at(gsi, "IndexName")?.to_owned(),
                    key_schema: pairs(gsi.get("KeySchema"), "AttributeName", "KeyType")?,
                    projection: gsi
                        .get("Projection")
                        .map(|p| str_at(p, "ProjectionType"))
                        .transpose()?
                        .unwrap_or("ALL")
                        .to_owned(),
                })
            })
            .collect::<Result<_, SchemaError>>()?;
        let ttl_attribute = props
            .get("TimeToLiveSpecification")
            .filter(|t| t.get("Enabled").and_then(Value::as_bool) == Some(true))
            .map(|t| str_at(t, "AttributeName").map(str::to_owned))
            .transpose()?;
        tables.push(TableDefinition {
            logical_id: logical_id.to_owned(),
            env_var,
            attributes: pairs(
                props.get("AttributeDefinitions"),
                "AttributeName",
                "AttributeType",
            )?,
            key_schema: pairs(props.get("KeySchema"), "AttributeName", "KeyType")?,
            indexes,
            ttl_attribute,
        });
    }
    Ok(tables)
}

fn key_schema(pairs: &[(String, String)]) -> Result<Vec<KeySchemaElement>, SchemaError> {
    pairs
        .iter()
        .map(|(name, kind)| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(KeyType::from(kind.as_str()))
                .build()
                .map_err(|e| template_err(e.to_string()))
        })
        .collect()
}

/// Creates every table of the template that does not exist yet, under the names in `names`.
/// Returns the names it created.
pub async fn create_tables(
    client: &Client,
    template_yaml: &str,
    names: &TableNames,
) -> Result<Vec<String>, SchemaError> {
    let existing = client
        .list_tables()
        .send()
        .await
        .map_err(classify)?
        .table_names
        .unwrap_or_default();
    let mut created = Vec::new();
    for table in parse_template(template_yaml)? {
        let name = names
            .by_env_var(&table.env_var)
            .ok_or_else(|| template_err(format!("unknown table variable {}", table.env_var)))?;
        if existing.iter().any(|t| t == name) {
            continue;
        }
        let mut request = client
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .set_key_schema(Some(key_schema(&table.key_schema)?));
        for (attr, kind) in &table.attributes {
            request = request.attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(attr)
                    .attribute_type(ScalarAttributeType::from(kind.as_str()))
                    .build()
                    .map_err(|e| template_err(e.to_string()))?,
            );
        }
        for index in &table.indexes {
            request = request.global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(&index.name)
                    .set_key_schema(Some(key_schema(&index.key_schema)?))
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::from(index.projection.as_str()))
                            .build(),
                    )
                    .build()
                    .map_err(|e| template_err(e.to_string()))?,
            );
        }
        request.send().await.map_err(classify)?;
        if let Some(attribute) = &table.ttl_attribute {
            client
                .update_time_to_live()
                .table_name(name)
                .time_to_live_specification(
                    TimeToLiveSpecification::builder()
                        .attribute_name(attribute)
                        .enabled(true)
                        .build()
                        .map_err(|e| template_err(e.to_string()))?,
                )
                .send()
                .await
                .map_err(classify)?;
        }
        created.push(name.to_owned());
    }
    Ok(created)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_projects_template_defines_every_table() {
        let yaml = include_str!("../../../template.yaml");
        let tables = parse_template(yaml).unwrap();
        let names = TableNames::with_prefix("x");
        for (var, _) in names.env_vars() {
            assert!(
                tables.iter().any(|t| t.env_var == var),
                "template.yaml has no table for {var}"
            );
        }
        let challenges = tables
            .iter()
            .find(|t| t.env_var == "CHALLENGES_TABLE")
            .unwrap();
        assert_eq!(challenges.ttl_attribute.as_deref(), Some("expires_at"));
        let credentials = tables
            .iter()
            .find(|t| t.env_var == "CREDENTIALS_TABLE")
            .unwrap();
        assert!(credentials
            .indexes
            .iter()
            .any(|i| i.name == "credential-id-index"));
    }
}
