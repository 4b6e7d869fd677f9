//! CloudNativePG `Cluster` (`postgresql.cnpg.io/v1`): the bootstrap SQL that policies read.

use crate::de::null_default;
use crate::workload::KeyRef;
use serde::Deserialize;

/// `spec.bootstrap`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Bootstrap {
    #[serde(default)]
    pub initdb: Option<Initdb>,
}

/// `spec.bootstrap.initdb`: the database it creates and the SQL run after `initdb`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Initdb {
    #[serde(default)]
    pub database: Option<String>,
    #[serde(default, deserialize_with = "null_default", rename = "postInitSQL")]
    pub post_init_sql: Vec<String>,
    #[serde(
        default,
        deserialize_with = "null_default",
        rename = "postInitTemplateSQL"
    )]
    pub post_init_template_sql: Vec<String>,
    #[serde(
        default,
        deserialize_with = "null_default",
        rename = "postInitApplicationSQL"
    )]
    pub post_init_application_sql: Vec<String>,
    #[serde(default, rename = "postInitSQLRefs")]
    pub post_init_sql_refs: Option<SqlRefs>,
    #[serde(default, rename = "postInitTemplateSQLRefs")]
    pub post_init_template_sql_refs: Option<SqlRefs>,
    #[serde(default, rename = "postInitApplicationSQLRefs")]
    pub post_init_application_sql_refs: Option<SqlRefs>,
}

/// `…SQLRefs`: ConfigMap and Secret keys holding SQL.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SqlRefs {
    #[serde(default, deserialize_with = "null_default")]
    pub config_map_refs: Vec<KeyRef>,
    #[serde(default, deserialize_with = "null_default")]
    pub secret_refs: Vec<KeyRef>,
}

/// One phase of post-initdb SQL, in the order CloudNativePG runs them.
pub struct Phase<'a> {
    /// The field name, e.g. `postInitSQL`.
    pub field: &'static str,
    /// The database the phase runs in: `postgres`, `template1` or the application database.
    pub database: &'a str,
    pub inline: &'a [String],
    pub refs: Option<&'a SqlRefs>,
}

impl Initdb {
    /// The application database (`app` unless `database` names another).
    pub fn app_database(&self) -> &str {
        self.database.as_deref().unwrap_or("app")
    }

    /// `postInitSQL` (in `postgres`), `postInitTemplateSQL` (in `template1`), then
    /// `postInitApplicationSQL` (in the application database).
    pub fn phases(&self) -> [Phase<'_>; 3] {
        [
            Phase {
                field: "postInitSQL",
                database: "postgres",
                inline: &self.post_init_sql,
                refs: self.post_init_sql_refs.as_ref(),
            },
            Phase {
                field: "postInitTemplateSQL",
                database: "template1",
                inline: &self.post_init_template_sql,
                refs: self.post_init_template_sql_refs.as_ref(),
            },
            Phase {
                field: "postInitApplicationSQL",
                database: self.app_database(),
                inline: &self.post_init_application_sql,
                refs: self.post_init_application_sql_refs.as_ref(),
            },
        ]
    }
}
