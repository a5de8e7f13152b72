package guichet_test

import (
	"bytes"
	"os"
	"testing"

	"guichet"
)

func TestExampleConfigIsTheFile(t *testing.T) {
	file, err := os.ReadFile("config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal([]byte(guichet.ExampleConfig()), file) {
		t.Error("the embedded example differs from config.example.yaml")
	}
}
