package policy

import "strings"

// builtinFunctions is the default function allow-list: what BI tools and
// drivers generate. Anything not listed (here or in the policy's
// functions.allow) is refused. Functions that read files, other relations by
// name, other databases, locks, sleep, or server state stay out; whether the
// warehouse is a standby in recovery (pgAdmin asks on connect) is the one
// piece of server state listed, which every PostgreSQL role may read and
// which tells nothing of any tenant.
var builtinFunctions = setOf(`
avg bit_and bit_or bit_xor bool_and bool_or count every max min sum string_agg array_agg json_agg jsonb_agg
json_object_agg jsonb_object_agg stddev stddev_pop stddev_samp variance var_pop var_samp corr covar_pop covar_samp
regr_avgx regr_avgy regr_count regr_intercept regr_r2 regr_slope regr_sxx regr_sxy regr_syy
percentile_cont percentile_disc mode rank dense_rank percent_rank cume_dist any_value
row_number ntile lag lead first_value last_value nth_value grouping
abs cbrt ceil ceiling degrees div exp factorial floor gcd lcm ln log log10 min_scale mod pi power radians round
scale sign sqrt trim_scale trunc width_bucket random acos acosd asin asind atan atand atan2 atan2d cos cosd cot cotd
sin sind tan tand sinh cosh tanh asinh acosh atanh numeric int2 int4 int8 float4 float8 greatest least
ascii bit_length btrim char_length character_length chr concat concat_ws format initcap left length lower lpad ltrim
md5 normalize octet_length overlay parse_ident position quote_ident quote_literal quote_nullable regexp_count
regexp_instr regexp_like regexp_match regexp_matches regexp_replace regexp_split_to_array regexp_split_to_table regexp_substr
repeat replace reverse right rpad rtrim split_part starts_with string_to_array string_to_table strpos substr
substring to_ascii to_hex translate trim upper unistr encode decode sha224 sha256 sha384 sha512 convert_from
convert_to text textcat like_escape similar_escape similar_to_escape pg_collation_for is_normalized
age clock_timestamp current_date current_time current_timestamp date_add date_bin date_part date_subtract
date_trunc extract isfinite justify_days justify_hours justify_interval localtime localtimestamp make_date
make_interval make_time make_timestamp make_timestamptz now statement_timestamp timeofday transaction_timestamp
to_timestamp timezone overlaps to_char to_date to_number date timestamp timestamptz interval
array_append array_cat array_dims array_fill array_length array_lower array_ndims array_position array_positions
array_prepend array_remove array_replace array_to_string array_upper cardinality trim_array unnest generate_series
generate_subscripts array_to_json
to_json to_jsonb row_to_json json_build_array jsonb_build_array json_build_object jsonb_build_object json_object
jsonb_object json_array_elements jsonb_array_elements json_array_elements_text jsonb_array_elements_text
json_array_length jsonb_array_length json_each jsonb_each json_each_text jsonb_each_text json_extract_path
jsonb_extract_path json_extract_path_text jsonb_extract_path_text json_object_keys jsonb_object_keys
json_populate_record jsonb_populate_record json_populate_recordset jsonb_populate_recordset json_to_record
jsonb_to_record json_to_recordset jsonb_to_recordset json_strip_nulls jsonb_strip_nulls jsonb_set jsonb_set_lax
jsonb_insert jsonb_pretty json_typeof jsonb_typeof jsonb_path_exists jsonb_path_match jsonb_path_query
jsonb_path_query_array jsonb_path_query_first jsonb_concat
coalesce nullif bool num_nonnulls num_nulls
to_tsvector to_tsquery plainto_tsquery phraseto_tsquery websearch_to_tsquery json_to_tsvector jsonb_to_tsvector
ts_rank ts_rank_cd ts_headline setweight strip numnode querytree tsquery_phrase tsvector_to_array array_to_tsvector
ts_delete ts_filter get_current_ts_config
pg_size_pretty pg_size_bytes
version current_schema current_schemas current_database current_catalog current_user session_user user
current_setting pg_backend_pid format_type pg_get_expr pg_encoding_to_char pg_char_to_encoding getdatabaseencoding pg_collation_is_visible
pg_typeof col_description
obj_description pg_get_userbyid
pg_is_in_recovery pg_is_wal_replay_paused pg_get_wal_replay_pause_state

set_config
`)

// aggregateFunctions are refused inside policy expressions.
var aggregateFunctions = setOf(`
avg bit_and bit_or bit_xor bool_and bool_or count every max min sum string_agg array_agg json_agg jsonb_agg
json_object_agg jsonb_object_agg stddev stddev_pop stddev_samp variance var_pop var_samp corr covar_pop covar_samp
percentile_cont percentile_disc mode rank dense_rank percent_rank cume_dist row_number ntile lag lead first_value
last_value nth_value any_value
`)

// deniedFunctions can never be allowed, not even by a policy: they read
// files, other relations by name, other databases or server state, take
// locks, sleep, or signal backends. ts_stat and ts_rewrite take a query as
// text and run it.
var deniedFunctions = setOf(`
query_to_xml query_to_xml_and_xmlschema query_to_xmlschema table_to_xml table_to_xml_and_xmlschema
table_to_xmlschema cursor_to_xml cursor_to_xmlschema schema_to_xml schema_to_xml_and_xmlschema schema_to_xmlschema
database_to_xml database_to_xml_and_xmlschema database_to_xmlschema
dblink dblink_exec dblink_connect dblink_connect_u dblink_open dblink_fetch dblink_send_query dblink_get_result
pg_read_file pg_read_binary_file pg_ls_dir pg_stat_file pg_ls_logdir pg_ls_waldir pg_ls_tmpdir pg_ls_archive_statusdir
lo_import lo_export lo_get lo_put lo_open lo_creat lo_create lo_unlink loread lowrite lo_from_bytea
pg_sleep pg_sleep_for pg_sleep_until pg_terminate_backend pg_cancel_backend pg_reload_conf pg_rotate_logfile
pg_advisory_lock pg_advisory_lock_shared pg_advisory_unlock pg_advisory_unlock_all pg_advisory_unlock_shared
pg_advisory_xact_lock pg_advisory_xact_lock_shared pg_try_advisory_lock pg_try_advisory_lock_shared
pg_try_advisory_xact_lock pg_try_advisory_xact_lock_shared
pg_notify pg_switch_wal pg_create_restore_point pg_start_backup pg_stop_backup pg_backup_start pg_backup_stop
pg_promote pg_logical_emit_message pg_file_write pg_file_rename pg_file_unlink
ts_stat ts_rewrite
`)

func setOf(words string) map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(words) {
		m[w] = true
	}
	return m
}

// IsAggregate reports whether name is a built-in aggregate or window function.
func IsAggregate(name string) bool { return aggregateFunctions[name] }
