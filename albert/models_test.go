package albert_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"guichet/albert"
	"guichet/albert/fakealbert"
)

func TestModels(t *testing.T) {
	custom := []albert.Model{{ID: "deepseek-v4-flash", Type: albert.TypeTextGeneration, Aliases: []string{"albert-fast", "ds"}, MaxContextLength: 64000}}
	tests := []struct {
		name      string
		set       []albert.Model
		key       string
		want      []albert.Model
		wantClass albert.Class
	}{
		{name: "default list", key: "k", want: fakealbert.DefaultModels()},
		{name: "custom list", key: "k", set: custom, want: custom},
		{name: "bad key", key: "nope", wantClass: albert.ClassAuth},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startFake(t)
			srv.SetAPIKey("k")
			if tt.set != nil {
				srv.SetModels(tt.set)
			}
			got, err := newClient(srv.URL, tt.key).Models(context.Background())
			if tt.wantClass != "" {
				if ae := asError(t, err); ae.Class != tt.wantClass || ae.Detail == "" {
					t.Errorf("error = %+v, want %s with detail", ae, tt.wantClass)
				}
				return
			}
			if err != nil {
				t.Fatalf("Models: %v", err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("Models = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestModelsRawShape(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/models" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, `{"object":"list","data":[
			{"id":"mistral-medium-2508","object":"model","type":"text-generation","aliases":["albert-large"],"created":1754000000,"owned_by":"Albert API","max_context_length":128000,"costs":{"prompt_tokens":1.0,"completion_tokens":3.0}},
			{"id":"meta-llama/Llama-3.1-8B-Instruct","type":"text-generation","aliases":null,"max_context_length":null}
		]}`)
	}))
	defer ts.Close()
	got, err := newClient(ts.URL+"/v1", "").Models(context.Background())
	if err != nil {
		t.Fatalf("Models: %v", err)
	}
	want := []albert.Model{
		{ID: "mistral-medium-2508", Type: "text-generation", Aliases: []string{"albert-large"}, MaxContextLength: 128000},
		{ID: "meta-llama/Llama-3.1-8B-Instruct", Type: "text-generation"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Models = %+v, want %+v", got, want)
	}
}
