package bot

// French texts about Albert API's 2026 answers: a key paused by its daily
// limit or its spent budget, a model closed to the key. To be folded into
// texts.go.

import (
	"fmt"
	"time"

	"guichet/albert"
)

// untilText says until when a paused service waits: "jusqu'à 14:32",
// "jusqu'à demain 00:00", "jusqu'au 02/12 à 00:00".
func untilText(until, now time.Time, loc *time.Location) string {
	u, n := until.In(loc), now.In(loc)
	ny, nm, nd := n.Date()
	today := time.Date(ny, nm, nd, 0, 0, 0, 0, loc)
	switch {
	case u.Before(today.AddDate(0, 0, 1)):
		return "jusqu'à " + u.Format("15:04")
	case u.Before(today.AddDate(0, 0, 2)):
		return "jusqu'à demain " + u.Format("15:04")
	}
	return "jusqu'au " + u.Format("02/01 à 15:04")
}

// textKeyPaused is what an agent reads while guichet does not call Albert:
// the key's daily limit is reached, or its budget is spent.
func textKeyPaused(class albert.Class, until, now time.Time, loc *time.Location) string {
	if class == albert.ClassDailyLimit {
		return fmt.Sprintf("⏸️ Le service est en pause %s : le nombre de questions que nous accorde Albert pour la journée est atteint. "+
			"Vous pourrez reposer votre question à partir de ce moment-là.", untilText(until, now, loc))
	}
	return "⏸️ Le service est suspendu pour le moment (budget épuisé). L'équipe est prévenue ; réessayez plus tard."
}

// textModsKeyPaused tells the support room, once, that guichet stopped
// calling Albert and until when.
func textModsKeyPaused(class albert.Class, until, now time.Time, loc *time.Location) string {
	if class == albert.ClassDailyLimit {
		return fmt.Sprintf("⏸️ Albert API refuse nos questions : la limite quotidienne de la clé d'API est atteinte. "+
			"Je mets le service en pause %s ; les agents qui écrivent d'ici là en sont informés. Je vous préviendrai à la reprise.",
			untilText(until, now, loc))
	}
	return "⏸️ Albert API refuse nos questions : le budget de la clé d'API est épuisé. " +
		"Je mets le service en pause et réessaierai de temps en temps ; les agents qui écrivent en sont informés. " +
		"Je vous préviendrai à la reprise."
}

// textModsKeyResumed tells the support room that Albert answers again after
// a pause.
func textModsKeyResumed(class albert.Class) string {
	why := "limite quotidienne"
	if class == albert.ClassBudget {
		why = "budget épuisé"
	}
	return fmt.Sprintf("▶️ Albert API accepte de nouveau nos questions (fin de la pause : %s) : le service a repris.", why)
}

// textModelClosed tells an agent that the model they chose is closed to
// guichet's key and that the default one answers instead.
func textModelClosed(model, fallback string) string {
	return fmt.Sprintf("Le modèle %s n'est pas ouvert à ce service : je repasse sur le modèle par défaut, %s. "+
		"Vous pouvez en choisir un autre avec `!modele`.", code(model), code(fallback))
}

// textAlbertFailure is textAlbertError for the 2026 classes too.
func textAlbertFailure(class albert.Class) string {
	switch class {
	case albert.ClassModelClosed:
		// The default model itself: nothing to fall back to.
		return textAlbertError(albert.ClassAuth)
	case albert.ClassDailyLimit:
		return textAlbertError(albert.ClassBudget)
	}
	return textAlbertError(class)
}
