package bot

import "testing"

func TestTextPromotedAgreesWithTheNumberOfAgents(t *testing.T) {
	one := textPromoted([]string{"@a:b"})
	if want := "Place libérée : @a:b sort de la liste d'attente ; je lui écris en message privé."; one != want {
		t.Errorf("one agent: %q, want %q", one, want)
	}
	two := textPromoted([]string{"@a:b", "@c:d"})
	if want := "Places libérées : @a:b, @c:d sortent de la liste d'attente ; je leur écris en message privé."; two != want {
		t.Errorf("two agents: %q, want %q", two, want)
	}
}
