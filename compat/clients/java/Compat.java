// pgjdbc through pgwarden: connect-time metadata, plain and prepared queries
// (past prepareThreshold, so server-prepared), setFetchSize in a transaction
// (a portal read in chunks), type loading, a refusal, and the
// DatabaseMetaData calls BI tools use (getTables, getColumns, getPrimaryKeys,
// getImportedKeys). Connection from the PG* environment; prints one JSON
// object (check name -> result) for compat/scripts_test.go.
import java.sql.*;
import java.util.*;

public class Compat {
    interface Check { Map<String, Object> run() throws Exception; }

    static final String TENANTS_SQL = "SELECT tenant_id FROM orders UNION SELECT tenant_id FROM customers UNION SELECT tenant_id FROM order_items"
        + " UNION SELECT tenant_id FROM events UNION SELECT tenant_id FROM tenants";

    static Connection connect() throws SQLException {
        String url = "jdbc:postgresql://" + System.getenv("PGHOST") + ":" + System.getenv("PGPORT") + "/" + System.getenv("PGDATABASE");
        Properties p = new Properties();
        p.setProperty("user", System.getenv("PGUSER"));
        p.setProperty("password", System.getenv("PGPASSWORD"));
        p.setProperty("sslmode", "disable");
        p.setProperty("ApplicationName", "compat-pgjdbc");
        return DriverManager.getConnection(url, p);
    }

    static long count(Connection c, String sql) throws SQLException {
        try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery(sql)) {
            rs.next();
            return rs.getLong(1);
        }
    }

    static Map<String, Object> result(Object... kv) {
        Map<String, Object> m = new LinkedHashMap<>();
        for (int i = 0; i < kv.length; i += 2) m.put((String) kv[i], kv[i + 1]);
        return m;
    }

    static Map<String, Object> connectCheck() throws Exception {
        try (Connection c = connect()) {
            DatabaseMetaData md = c.getMetaData();
            return result("values", result("product", md.getDatabaseProductName(), "version", md.getDatabaseProductVersion(),
                "catalog", String.valueOf(c.getCatalog()), "schema", String.valueOf(c.getSchema()),
                // isValid is HikariCP's liveness check: an empty query.
                "valid", String.valueOf(c.isValid(5))));
        }
    }

    static Map<String, Object> select() throws Exception {
        try (Connection c = connect(); Statement st = c.createStatement(); ResultSet rs = st.executeQuery(TENANTS_SQL)) {
            List<String> tenants = new ArrayList<>();
            while (rs.next()) tenants.add(rs.getString(1));
            return result("tenants", tenants, "counts", result("customers", count(c, "SELECT count(*) FROM customers"),
                "orders", count(c, "SELECT count(*) FROM orders")));
        }
    }

    static Map<String, Object> prepared() throws Exception {
        Map<String, Object> counts = new LinkedHashMap<>();
        try (Connection c = connect(); PreparedStatement ps = c.prepareStatement("SELECT count(*) FROM orders WHERE tenant_id = ?")) {
            // Six executions: pgjdbc switches to a named server-side statement
            // after prepareThreshold (5).
            for (int i = 0; i < 6; i++) {
                for (String t : new String[] {"acme", "globex"}) {
                    ps.setString(1, t);
                    try (ResultSet rs = ps.executeQuery()) {
                        rs.next();
                        counts.put(t, rs.getLong(1));
                    }
                }
            }
        }
        return result("counts", counts);
    }

    static Map<String, Object> fetchSize() throws Exception {
        try (Connection c = connect()) {
            c.setAutoCommit(false);
            Set<String> tenants = new TreeSet<>();
            long rows = 0;
            try (PreparedStatement ps = c.prepareStatement("SELECT tenant_id, order_id, total FROM orders WHERE total >= ? ORDER BY order_id")) {
                ps.setFetchSize(50);
                ps.setInt(1, 0);
                try (ResultSet rs = ps.executeQuery()) {
                    while (rs.next()) {
                        tenants.add(rs.getString(1));
                        rows++;
                    }
                }
            }
            c.commit();
            return result("tenants", new ArrayList<>(tenants), "counts", result("rows", rows));
        }
    }

    static Map<String, Object> types() throws Exception {
        try (Connection c = connect(); Statement st = c.createStatement();
             ResultSet rs = st.executeQuery("SELECT array_agg(DISTINCT region ORDER BY region), (SELECT payload FROM events ORDER BY event_id LIMIT 1) FROM orders")) {
            rs.next();
            // getArray makes pgjdbc load the array's element type (TypeInfoCache).
            Object[] regions = (Object[]) rs.getArray(1).getArray();
            String ok = regions.length > 0 ? "ok" : "empty";
            for (Object r : regions) {
                if (!Arrays.asList("EU", "NA", "APAC").contains(r)) ok = "unexpected " + r;
            }
            return result("values", result("regions", ok, "payload_type", rs.getMetaData().getColumnTypeName(2)));
        }
    }

    static Map<String, Object> refused() throws Exception {
        try (Connection c = connect()) {
            String code = "";
            try (Statement st = c.createStatement()) {
                st.executeQuery("SELECT * FROM internal_costs").close();
            } catch (SQLException e) {
                code = e.getSQLState();
            }
            return result("sqlstate", code, "counts", result("after", count(c, "SELECT count(*) FROM customers")));
        }
    }

    static Map<String, Object> tables() throws Exception {
        try (Connection c = connect(); ResultSet rs = c.getMetaData().getTables(null, "public", "%", new String[] {"TABLE"})) {
            List<String> names = new ArrayList<>();
            while (rs.next()) names.add(rs.getString("TABLE_NAME"));
            return result("names", names);
        }
    }

    static Map<String, Object> columns() throws Exception {
        try (Connection c = connect(); ResultSet rs = c.getMetaData().getColumns(null, "public", "customers", "%")) {
            List<String> names = new ArrayList<>();
            while (rs.next()) names.add(rs.getString("COLUMN_NAME"));
            return result("names", names);
        }
    }

    static Map<String, Object> pkeys() throws Exception {
        try (Connection c = connect(); ResultSet rs = c.getMetaData().getPrimaryKeys(null, "public", "orders")) {
            TreeMap<Integer, String> bySeq = new TreeMap<>();
            while (rs.next()) bySeq.put(rs.getInt("KEY_SEQ"), rs.getString("COLUMN_NAME"));
            return result("names", new ArrayList<>(bySeq.values()));
        }
    }

    static Map<String, Object> fkeys() throws Exception {
        try (Connection c = connect(); ResultSet rs = c.getMetaData().getImportedKeys(null, "public", "orders")) {
            List<String> names = new ArrayList<>();
            while (rs.next()) {
                names.add(rs.getString("FKCOLUMN_NAME") + "->" + rs.getString("PKTABLE_NAME") + "." + rs.getString("PKCOLUMN_NAME"));
            }
            return result("names", names);
        }
    }

    static Map<String, Object> schemas() throws Exception {
        try (Connection c = connect(); ResultSet rs = c.getMetaData().getSchemas()) {
            List<String> names = new ArrayList<>();
            while (rs.next()) names.add(rs.getString("TABLE_SCHEM"));
            return result("names", names);
        }
    }

    static Map<String, Object> catalogs() throws Exception {
        try (Connection c = connect(); ResultSet rs = c.getMetaData().getCatalogs()) {
            List<String> names = new ArrayList<>();
            while (rs.next()) names.add(rs.getString("TABLE_CAT"));
            return result("names", names);
        }
    }

    // ResultSetMetaData.isNullable and isAutoIncrement make pgjdbc look up the
    // result's base columns (DBeaver and the JDBC result grid of most tools).
    static Map<String, Object> resultSetMetaData() throws Exception {
        try (Connection c = connect(); Statement st = c.createStatement();
             ResultSet rs = st.executeQuery("SELECT order_id, region FROM orders LIMIT 1")) {
            ResultSetMetaData md = rs.getMetaData();
            return result("values", result("nullable", String.valueOf(md.isNullable(1)), "autoincrement", String.valueOf(md.isAutoIncrement(1)),
                "table", md.getTableName(1)));
        }
    }

    public static void main(String[] args) {
        Map<String, Check> checks = new LinkedHashMap<>();
        checks.put("connect", Compat::connectCheck);
        checks.put("select", Compat::select);
        checks.put("prepared", Compat::prepared);
        checks.put("fetchsize", Compat::fetchSize);
        checks.put("types", Compat::types);
        checks.put("refused", Compat::refused);
        checks.put("tables", Compat::tables);
        checks.put("columns", Compat::columns);
        checks.put("pkeys", Compat::pkeys);
        checks.put("fkeys", Compat::fkeys);
        checks.put("schemas", Compat::schemas);
        checks.put("catalogs", Compat::catalogs);
        checks.put("resultset-metadata", Compat::resultSetMetaData);
        Map<String, Object> out = new LinkedHashMap<>();
        for (Map.Entry<String, Check> e : checks.entrySet()) {
            try {
                out.put(e.getKey(), e.getValue().run());
            } catch (Exception ex) {
                String state = ex instanceof SQLException ? " (SQLSTATE " + ((SQLException) ex).getSQLState() + ")" : "";
                out.put(e.getKey(), result("error", ex.getClass().getSimpleName() + ": " + ex.getMessage() + state));
                ex.printStackTrace(System.err);
            }
        }
        System.out.println(json(out));
    }

    static String json(Object o) {
        if (o == null) return "null";
        if (o instanceof String) {
            StringBuilder b = new StringBuilder("\"");
            for (char ch : ((String) o).toCharArray()) {
                if (ch == '"' || ch == '\\') b.append('\\').append(ch);
                else if (ch < 0x20) b.append(String.format("\\u%04x", (int) ch));
                else b.append(ch);
            }
            return b.append('"').toString();
        }
        if (o instanceof Number || o instanceof Boolean) return o.toString();
        if (o instanceof Map) {
            StringJoiner j = new StringJoiner(",", "{", "}");
            for (Map.Entry<?, ?> e : ((Map<?, ?>) o).entrySet()) j.add(json(String.valueOf(e.getKey())) + ":" + json(e.getValue()));
            return j.toString();
        }
        if (o instanceof Collection) {
            StringJoiner j = new StringJoiner(",", "[", "]");
            for (Object x : (Collection<?>) o) j.add(json(x));
            return j.toString();
        }
        return json(o.toString());
    }
}
