package policy

import (
	"bytes"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// NewContentEntry is a statement to add to a policy's content.statements.
type NewContentEntry struct {
	Name string
	SQL  string
	// Comment goes above the entry (where it was learned, an example).
	Comment string
}

// AppendContent adds entries to the content.statements of the policy file
// data (creating the section if needed), keeping the rest of the file and
// its comments. The result is parsed again: an entry that would make the
// policy invalid is an error, and nothing is returned.
func AppendContent(data []byte, filename string, entries []NewContentEntry) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, yamlError(filename, err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s: not a policy (want a mapping at the top)", filename)
	}
	content := mappingValue(doc.Content[0], "content", yaml.MappingNode)
	stmts := mappingValue(content, "statements", yaml.SequenceNode)
	if stmts.Style == yaml.FlowStyle {
		stmts.Style = 0
	}
	for _, e := range entries {
		sql := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: e.SQL}
		if strings.Contains(e.SQL, "\n") {
			sql.Style = yaml.LiteralStyle
		}
		stmts.Content = append(stmts.Content, &yaml.Node{Kind: yaml.MappingNode, HeadComment: e.Comment, Content: []*yaml.Node{
			{Kind: yaml.ScalarNode, Value: "name"}, {Kind: yaml.ScalarNode, Tag: "!!str", Value: e.Name},
			{Kind: yaml.ScalarNode, Value: "sql"}, sql,
		}})
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("%s: %w", filename, err)
	}
	enc.Close()
	if _, err := Parse(b.Bytes(), filename); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// mappingValue returns the value of key in mapping m, adding key with an
// empty value of kind when it is missing (or null).
func mappingValue(m *yaml.Node, key string, kind yaml.Kind) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			v := m.Content[i+1]
			if v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
				*v = yaml.Node{Kind: kind}
			}
			return v
		}
	}
	v := &yaml.Node{Kind: kind}
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: key}, v)
	return v
}
