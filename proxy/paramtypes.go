package proxy

import "github.com/pgwarden/pgwarden/pgerr"

// Object identifier types whose input function looks a name up in the
// warehouse's catalogs. A Parse that declares a parameter of one of them would
// resolve a client-supplied name past the rewriter (which makes hidden and
// missing relations look alike only for the casts it can see), so it is
// refused; clients pass names as text and cast in SQL instead.
var regTypeOIDs = map[uint32]string{
	24: "regproc", 2202: "regprocedure", 2203: "regoper", 2204: "regoperator",
	2205: "regclass", 2206: "regtype", 4096: "regrole", 4089: "regnamespace",
	3734: "regconfig", 3769: "regdictionary", 4191: "regcollation",
	1008: "regproc[]", 2207: "regprocedure[]", 2208: "regoper[]", 2209: "regoperator[]",
	2210: "regclass[]", 2211: "regtype[]", 4097: "regrole[]", 4090: "regnamespace[]",
	3735: "regconfig[]", 3770: "regdictionary[]", 4192: "regcollation[]",
}

// checkParamTypes refuses declared parameter types that resolve catalog names.
func checkParamTypes(oids []uint32) error {
	for i, oid := range oids {
		if name, ok := regTypeOIDs[oid]; ok {
			return pgerr.Denied("permission denied: parameter $%d of type %s", i+1, name).
				WithHint("send the name as text and cast it in the statement, e.g. $%d::text::regclass", i+1)
		}
	}
	return nil
}
