package proxy

import (
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// BenchmarkFrameAnswer is the warehouse side of one pgbench -S answer
// without the relay: its five messages read as frames and decoded, as
// relayFrom reads them.
func BenchmarkFrameAnswer(b *testing.B) {
	rd := &pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte("abalance"), TableOID: 16400, TableAttributeNumber: 3, DataTypeOID: 23, DataTypeSize: 4, TypeModifier: -1}}}
	answer := encodeAll(b, &pgproto3.BindComplete{}, rd, &pgproto3.DataRow{Values: [][]byte{[]byte("0")}},
		&pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")}, &pgproto3.ReadyForQuery{TxStatus: 'I'})
	sc := &serverConn{rd: frameReader{r: &answerReader{answer}}}
	b.ReportAllocs()
	for b.Loop() {
		for range 5 {
			frame, err := sc.ReceiveFrame()
			if err != nil {
				b.Fatal(err)
			}
			if _, err := sc.Decode(frame); err != nil {
				b.Fatal(err)
			}
		}
	}
}
