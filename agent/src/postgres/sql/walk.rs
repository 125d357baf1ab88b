//! Walking one parsed statement: its class and the tables it reads and writes.
//!
//! Statements, queries (`WITH`, set operations) and DML targets are walked by hand, so that each
//! table lands in the right list and CTE names are scoped as PostgreSQL scopes them. Everything
//! else (expressions, `FROM` lists, `RETURNING`, ...) is searched with sqlparser's visitor for the
//! tables in `FROM`-like positions and the outermost nested queries, which are then walked in
//! turn: a subquery in any clause is found without listing every clause that can hold one.

use std::convert::Infallible;
use std::ops::ControlFlow;

use sqlparser::ast::{
    CopySource, CopyTarget, CreateTableLikeKind, Delete, Expr, FromTable, GrantObjects, Insert,
    Merge, ObjectName, ObjectType, OnConflict, OnConflictAction, OnInsert, Query, Reset,
    SchemaName, Select, SelectItem, Set, SetExpr, Statement, TableAlias, TableFactor, TableObject,
    Update, UtilityOption, Value, Visit, Visitor,
};

use super::StatementClass as C;
use super::names;

/// What a statement does and touches.
#[derive(Debug, Default)]
pub(crate) struct Analysis {
    /// The most consequential class found; `None` until something is found.
    pub class: Option<C>,
    /// Tables read, normalized, first occurrence first.
    pub reads: Vec<String>,
    /// Tables and objects written, normalized, first occurrence first.
    pub writes: Vec<String>,
    /// The session's prepared statements and portals it makes or drops.
    pub names: super::NameEffects,
}

/// Classifies one parsed statement.
pub(crate) fn statement(stmt: &Statement) -> Analysis {
    let mut walker = Walker::default();
    walker.statement(stmt);
    if super::reading::changes_reading(stmt) || super::reading::writes_settings(&walker.out.writes)
    {
        walker.raise(C::Unknown);
    }
    walker.out.names = super::session_names::of(stmt);
    walker.out
}

#[derive(Default)]
struct Walker {
    out: Analysis,
    /// CTE names in scope, one frame per `WITH` being walked, innermost last.
    ctes: Vec<Vec<String>>,
}

impl Walker {
    fn raise(&mut self, class: C) {
        self.out.class = Some(self.out.class.map_or(class, |c| c.max(class)));
    }

    fn read(&mut self, name: String) {
        if names::has_string_part(&name) {
            return self.raise(C::Unknown);
        }
        if !self.out.reads.contains(&name) {
            self.out.reads.push(name);
        }
    }

    fn write(&mut self, name: String) {
        if names::has_string_part(&name) {
            return self.raise(C::Unknown);
        }
        if !self.out.writes.contains(&name) {
            self.out.writes.push(name);
        }
    }

    /// A table in a `FROM`-like position; an unqualified name of a CTE in scope is not a table.
    fn read_relation(&mut self, name: &ObjectName, alias: Option<&TableAlias>) {
        let (name, unqualified) = names::relation(name, alias);
        if unqualified && self.ctes.iter().any(|frame| frame.contains(&name)) {
            return;
        }
        self.read(name);
    }

    /// Every table and outermost query in `node`, as reads.
    fn reads_in<V: Visit + ?Sized>(&mut self, node: &V) {
        let _ = node.visit(&mut Finder {
            walker: self,
            depth: 0,
        });
    }

    fn statement(&mut self, stmt: &Statement) {
        match stmt {
            Statement::Query(query) => self.query(query),
            Statement::Insert(insert) => self.insert(insert),
            Statement::Update(update) => self.update(update),
            Statement::Delete(delete) => self.delete(delete),
            Statement::Merge(merge) => self.merge(merge),
            Statement::Copy {
                source, to, target, ..
            } => self.copy(source, *to, target),
            Statement::Truncate(truncate) => {
                self.raise(C::Truncate);
                for target in &truncate.table_names {
                    self.write(names::object(&target.name));
                }
            }
            Statement::Explain {
                analyze,
                statement,
                options,
                ..
            } => self.explain(*analyze, statement, options.as_deref()),
            Statement::Prepare { statement, .. } => self.statement(statement),
            Statement::Declare { stmts } => {
                for declare in stmts {
                    match &declare.for_query {
                        Some(query) => self.query(query),
                        None => self.raise(C::Unknown),
                    }
                }
            }
            Statement::Fetch { .. } => self.raise(C::Select),
            Statement::StartTransaction {
                statements,
                exception,
                ..
            } => {
                let plain = statements.is_empty() && exception.is_none();
                self.raise(if plain { C::Transaction } else { C::Unknown });
            }
            Statement::Commit { .. }
            | Statement::Rollback { .. }
            | Statement::Savepoint { .. }
            | Statement::ReleaseSavepoint { .. } => self.raise(C::Transaction),
            Statement::Set(set) => {
                self.raise(if set_changes_role(set) {
                    C::Dcl
                } else {
                    C::Set
                });
                self.reads_in(set);
            }
            Statement::Reset(reset) => {
                let role = match &reset.reset {
                    Reset::SessionAuthorization => true,
                    Reset::ConfigurationParameter(name) => is_role_parameter(name),
                    Reset::ALL => false,
                };
                self.raise(if role { C::Dcl } else { C::Set });
            }
            Statement::ShowVariable { .. } => self.raise(C::Set),
            Statement::Vacuum(vacuum) => {
                self.raise(C::Utility);
                if let Some(name) = &vacuum.table_name {
                    self.read(names::object(name));
                }
            }
            Statement::Analyze(analyze) => {
                self.raise(C::Utility);
                if let Some(name) = &analyze.table_name {
                    self.read(names::object(name));
                }
            }
            Statement::Lock(lock) => {
                self.raise(C::Utility);
                for target in &lock.tables {
                    self.read(names::object(&target.name));
                }
            }
            Statement::LISTEN { .. }
            | Statement::UNLISTEN { .. }
            | Statement::NOTIFY { .. }
            | Statement::Deallocate { .. }
            | Statement::Discard { .. }
            | Statement::Close { .. } => self.raise(C::Utility),
            Statement::Grant(grant) => self.dcl_on(grant.objects.as_ref()),
            Statement::Revoke(revoke) => self.dcl_on(revoke.objects.as_ref()),
            Statement::CreateRole(_)
            | Statement::AlterRole { .. }
            | Statement::CreateUser(_)
            | Statement::AlterUser(_)
            | Statement::Drop {
                object_type: ObjectType::Role | ObjectType::User,
                ..
            } => self.raise(C::Dcl),
            other => match ddl_objects(other) {
                Some(objects) => {
                    self.raise(C::Ddl);
                    for object in objects {
                        self.write(object);
                    }
                    if let Statement::CreateTable(create) = other
                        && let Some(
                            CreateTableLikeKind::Parenthesized(like)
                            | CreateTableLikeKind::Plain(like),
                        ) = &create.like
                    {
                        self.read(names::object(&like.name));
                    }
                    // `CREATE TABLE AS`, `CREATE VIEW AS`, policy expressions, ...
                    self.reads_in(other);
                }
                // `DO`, `CALL`, `EXECUTE`, `LOAD`, other dialects' statements: fail closed.
                None => self.raise(C::Unknown),
            },
        }
    }

    fn query(&mut self, query: &Query) {
        self.raise(C::Select);
        let scoped = match &query.with {
            Some(with) => {
                let names: Vec<String> = with
                    .cte_tables
                    .iter()
                    .map(|cte| names::ident(&cte.alias.name))
                    .collect();
                for (i, cte) in with.cte_tables.iter().enumerate() {
                    // A CTE sees the ones before it; with RECURSIVE, all of them (itself included).
                    let visible = if with.recursive {
                        names.clone()
                    } else {
                        names[..i].to_vec()
                    };
                    self.ctes.push(visible);
                    self.query(&cte.query);
                    self.ctes.pop();
                }
                self.ctes.push(names);
                true
            }
            None => false,
        };
        self.set_expr(&query.body);
        self.reads_in(&query.order_by);
        self.reads_in(&query.limit_clause);
        self.reads_in(&query.fetch);
        self.reads_in(&query.pipe_operators);
        if scoped {
            self.ctes.pop();
        }
    }

    fn set_expr(&mut self, mut body: &SetExpr) {
        // Set operations nest to the left without bound (`a UNION b UNION c ...`): loop down the
        // left spine rather than recurse, then walk the operands left to right.
        let mut rights = Vec::new();
        while let SetExpr::SetOperation { left, right, .. } = body {
            rights.push(right);
            body = left;
        }
        self.set_operand(body);
        for right in rights.into_iter().rev() {
            self.set_expr(right);
        }
    }

    fn set_operand(&mut self, body: &SetExpr) {
        match body {
            SetExpr::SetOperation { .. } => {}
            SetExpr::Select(select) => self.select(select),
            SetExpr::Query(query) => self.query(query),
            SetExpr::Values(values) => {
                self.raise(C::Select);
                self.reads_in(values);
            }
            SetExpr::Insert(stmt)
            | SetExpr::Update(stmt)
            | SetExpr::Delete(stmt)
            | SetExpr::Merge(stmt) => self.statement(stmt),
            // `TABLE name`: sqlparser keeps no quoting for it, so the name cannot be normalized.
            SetExpr::Table(_) => self.raise(C::Unknown),
        }
    }

    fn select(&mut self, select: &Select) {
        self.raise(C::Select);
        if let Some(into) = &select.into {
            self.raise(C::Ddl);
            for target in &into.targets {
                match target {
                    Expr::Identifier(id) => self.write(names::ident(id)),
                    Expr::CompoundIdentifier(ids) => {
                        self.write(names::object(&ObjectName::from(ids.clone())))
                    }
                    // MySQL's `INTO @var` / `INTO OUTFILE`: not PostgreSQL.
                    _ => self.raise(C::Unknown),
                }
            }
        }
        self.reads_in(select);
    }

    /// Writes the target of an `UPDATE`/`DELETE`/`MERGE` and returns its name.
    fn dml_target(&mut self, target: &TableFactor) -> Option<String> {
        match target {
            TableFactor::Table {
                name,
                alias,
                args: None,
                ..
            } => {
                let (name, _) = names::relation(name, alias.as_ref());
                self.write(name.clone());
                Some(name)
            }
            other => {
                self.raise(C::Unknown);
                self.reads_in(other);
                None
            }
        }
    }

    /// `RETURNING` hands back the targets' rows: the targets are read too.
    fn returning(&mut self, returning: Option<&Vec<SelectItem>>, targets: Vec<String>) {
        if let Some(items) = returning {
            self.reads_in(items);
            for target in targets {
                self.read(target);
            }
        }
    }

    fn insert(&mut self, insert: &Insert) {
        let upsert = matches!(
            insert.on,
            Some(OnInsert::OnConflict(OnConflict {
                action: OnConflictAction::DoUpdate(_),
                ..
            })) | Some(OnInsert::DuplicateKeyUpdate(_))
        );
        self.raise(if upsert { C::Update } else { C::Insert });
        if !insert.multi_table_into_clauses.is_empty() {
            self.raise(C::Unknown);
        }
        let mut targets = Vec::new();
        match &insert.table {
            TableObject::TableName(name) => {
                let name = names::object(name);
                self.write(name.clone());
                targets.push(name);
            }
            other => {
                self.raise(C::Unknown);
                self.reads_in(other);
            }
        }
        if let Some(source) = &insert.source {
            self.query(source);
        }
        self.reads_in(&insert.assignments);
        self.reads_in(&insert.on);
        self.returning(insert.returning.as_ref(), targets);
    }

    fn update(&mut self, update: &Update) {
        self.raise(if update.selection.is_some() {
            C::Update
        } else {
            C::UpdateNoWhere
        });
        let targets: Vec<String> = self
            .dml_target(&update.table.relation)
            .into_iter()
            .collect();
        self.reads_in(&update.table.joins);
        self.reads_in(&update.from);
        self.reads_in(&update.assignments);
        self.reads_in(&update.selection);
        self.reads_in(&update.order_by);
        self.reads_in(&update.limit);
        self.returning(update.returning.as_ref(), targets);
    }

    fn delete(&mut self, delete: &Delete) {
        self.raise(if delete.selection.is_some() {
            C::Delete
        } else {
            C::DeleteNoWhere
        });
        let from = match &delete.from {
            FromTable::WithFromKeyword(from) | FromTable::WithoutKeyword(from) => from,
        };
        let mut targets = Vec::new();
        if delete.tables.is_empty() {
            for item in from {
                targets.extend(self.dml_target(&item.relation));
                self.reads_in(&item.joins);
            }
        } else {
            // Multi-table `DELETE t1 FROM t1 JOIN t2` (not PostgreSQL): the listed tables are
            // the targets, the rest is read.
            for name in &delete.tables {
                let name = names::object(name);
                self.write(name.clone());
                targets.push(name);
            }
            self.reads_in(from);
        }
        self.reads_in(&delete.using);
        self.reads_in(&delete.selection);
        self.reads_in(&delete.order_by);
        self.reads_in(&delete.limit);
        self.returning(delete.returning.as_ref(), targets);
    }

    fn merge(&mut self, merge: &Merge) {
        self.raise(C::Merge);
        self.dml_target(&merge.table);
        self.reads_in(&merge.source);
        self.reads_in(&merge.on);
        self.reads_in(&merge.clauses);
        self.reads_in(&merge.output);
    }

    fn copy(&mut self, source: &CopySource, to: bool, target: &CopyTarget) {
        if matches!(target, CopyTarget::Program { .. }) {
            // Runs a shell command on the database server.
            self.raise(C::Unknown);
        }
        match source {
            CopySource::Table { table_name, .. } if to => {
                self.raise(C::CopyTo);
                self.read(names::object(table_name));
            }
            CopySource::Table { table_name, .. } => {
                self.raise(C::CopyFrom);
                self.write(names::object(table_name));
            }
            CopySource::Query(query) => {
                self.raise(if to { C::CopyTo } else { C::Unknown });
                self.query(query);
            }
        }
    }

    fn explain(&mut self, analyze: bool, inner: &Statement, options: Option<&[UtilityOption]>) {
        if analyze || options.is_some_and(|options| options.iter().any(runs_analyze)) {
            // EXPLAIN ANALYZE runs the statement.
            self.statement(inner);
            return;
        }
        let planned = statement(inner);
        self.raise(if planned.class == Some(C::Unknown) {
            C::Unknown
        } else {
            C::Utility
        });
        for name in planned.reads.into_iter().chain(planned.writes) {
            self.read(name);
        }
    }

    fn dcl_on(&mut self, objects: Option<&GrantObjects>) {
        self.raise(C::Dcl);
        if let Some(
            GrantObjects::Tables(names)
            | GrantObjects::Views(names)
            | GrantObjects::Sequences(names)
            | GrantObjects::Schemas(names),
        ) = objects
        {
            for name in names {
                self.write(names::object(name));
            }
        }
    }
}

/// Finds, at the current query level, the tables in `FROM`-like positions and the outermost
/// nested queries (which it hands to the walker; their insides are the walker's business).
struct Finder<'w> {
    walker: &'w mut Walker,
    depth: usize,
}

impl Visitor for Finder<'_> {
    type Break = Infallible;

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<Self::Break> {
        if self.depth == 0 {
            self.walker.query(query);
        }
        self.depth += 1;
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _query: &Query) -> ControlFlow<Self::Break> {
        self.depth = self.depth.saturating_sub(1);
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<Self::Break> {
        // `args: Some` is a set-returning function (`FROM generate_series(1, 3)`), not a table.
        if self.depth == 0
            && let TableFactor::Table {
                name,
                alias,
                args: None,
                ..
            } = factor
        {
            self.walker.read_relation(name, alias.as_ref());
        }
        ControlFlow::Continue(())
    }
}

/// The objects a DDL statement creates, alters or drops (and the table an index, trigger or
/// policy hangs on); `None` when the statement is not DDL this classifier knows.
fn ddl_objects(stmt: &Statement) -> Option<Vec<String>> {
    let obj = names::object;
    let objects = match stmt {
        Statement::CreateTable(create) => vec![obj(&create.name)],
        Statement::CreateView(create) => vec![obj(&create.name)],
        Statement::CreateIndex(create) => create
            .name
            .iter()
            .chain([&create.table_name])
            .map(obj)
            .collect(),
        Statement::CreateSchema { schema_name, .. } => vec![match schema_name {
            SchemaName::Simple(name) | SchemaName::NamedAuthorization(name, _) => obj(name),
            SchemaName::UnnamedAuthorization(owner) => names::ident(owner),
        }],
        Statement::CreateDatabase { db_name, .. } => vec![obj(db_name)],
        Statement::CreateSequence { name, .. } | Statement::CreateType { name, .. } => {
            vec![obj(name)]
        }
        Statement::CreateDomain(create) => vec![obj(&create.name)],
        Statement::CreateFunction(create) => vec![obj(&create.name)],
        Statement::CreateProcedure { name, .. } => vec![obj(name)],
        Statement::CreateTrigger(create) => vec![obj(&create.name), obj(&create.table_name)],
        Statement::CreateExtension(create) => vec![names::ident(&create.name)],
        Statement::CreateCollation(create) => vec![obj(&create.name)],
        Statement::CreatePolicy(create) => vec![obj(&create.table_name)],
        Statement::AlterTable(alter) => vec![obj(&alter.name)],
        Statement::AlterSchema(alter) => vec![obj(&alter.name)],
        Statement::AlterIndex { name, .. } | Statement::AlterView { name, .. } => vec![obj(name)],
        Statement::AlterFunction(alter) => vec![obj(&alter.function.name)],
        Statement::AlterType(alter) => vec![obj(&alter.name)],
        Statement::AlterCollation(alter) => vec![obj(&alter.name)],
        Statement::AlterPolicy(alter) => vec![obj(&alter.table_name)],
        Statement::Drop { names, table, .. } => names.iter().chain(table).map(obj).collect(),
        Statement::DropFunction(drop) => drop.func_desc.iter().map(|f| obj(&f.name)).collect(),
        Statement::DropProcedure { proc_desc, .. } => {
            proc_desc.iter().map(|f| obj(&f.name)).collect()
        }
        Statement::DropDomain(drop) => vec![obj(&drop.name)],
        Statement::DropPolicy(drop) => vec![obj(&drop.table_name)],
        Statement::DropTrigger(drop) => [&drop.trigger_name]
            .into_iter()
            .chain(&drop.table_name)
            .map(obj)
            .collect(),
        Statement::DropExtension(drop) => drop.names.iter().map(names::ident).collect(),
        Statement::Comment { object_name, .. } => vec![obj(object_name)],
        Statement::RenameTable(renames) => renames
            .iter()
            .flat_map(|r| [obj(&r.old_name), obj(&r.new_name)])
            .collect(),
        Statement::CreateOperator(_)
        | Statement::CreateOperatorFamily(_)
        | Statement::CreateOperatorClass(_)
        | Statement::CreateTextSearch(_)
        | Statement::CreateServer(_)
        | Statement::AlterOperator(_)
        | Statement::AlterOperatorFamily(_)
        | Statement::AlterOperatorClass(_)
        | Statement::AlterTextSearch(_)
        | Statement::DropOperator(_)
        | Statement::DropOperatorFamily(_)
        | Statement::DropOperatorClass(_) => Vec::new(),
        _ => return None,
    };
    Some(objects)
}

/// `SET ROLE`, `SET SESSION AUTHORIZATION`, and `SET role = ...` spelled as a parameter.
fn set_changes_role(set: &Set) -> bool {
    match set {
        Set::SetRole { .. } | Set::SetSessionAuthorization(_) => true,
        Set::SingleAssignment { variable, .. } => is_role_parameter(variable),
        Set::ParenthesizedAssignments { variables, .. } => variables.iter().any(is_role_parameter),
        Set::MultipleAssignments { assignments } => {
            assignments.iter().any(|a| is_role_parameter(&a.name))
        }
        _ => false,
    }
}

/// A parameter that changes the role in force; a name read from a string (`SET 'x' = ...`,
/// which PostgreSQL rejects) counts as one, whatever its value (fail closed).
fn is_role_parameter(name: &ObjectName) -> bool {
    // Settings are looked up without case, quoted or not (`SET "ROLE" = x` is `SET ROLE`).
    let name = names::object(name).to_ascii_lowercase();
    names::has_string_part(&name)
        || name.contains('\\')
        || matches!(name.as_str(), "role" | "session_authorization")
}

/// An `EXPLAIN (ANALYZE [value])` option that is not clearly off. Anything but an explicit false
/// (`false`, `off`, `no`, `0`) counts as on: fail closed.
fn runs_analyze(option: &UtilityOption) -> bool {
    let name = option.name.value.as_str();
    if !(name.eq_ignore_ascii_case("analyze") || name.eq_ignore_ascii_case("analyse")) {
        return false;
    }
    let falsy = |s: &str| {
        ["false", "off", "no", "0"]
            .iter()
            .any(|f| s.eq_ignore_ascii_case(f))
    };
    match &option.arg {
        None => true,
        Some(Expr::Value(value)) => match &value.value {
            Value::Boolean(on) => *on,
            Value::Number(n, _) | Value::SingleQuotedString(n) => !falsy(n),
            _ => true,
        },
        Some(Expr::Identifier(id)) => !falsy(&id.value),
        Some(_) => true,
    }
}
