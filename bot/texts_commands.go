package bot

import (
	"fmt"

	"maunium.net/go/mautrix/id"

	"guichet/approvals"
)

// Texts of the command tables and of decisions on one request (to be folded
// into texts.go).

const textModeratorHelpFooter = "\nUne cible peut être un identifiant (`@prenom.nom-ministere.gouv.fr:agent.dinum.tchap.gouv.fr`), " +
	"une mention ou un numéro de demande (`#42`). Un numéro désigne cette demande-là : si elle n'est plus en attente, " +
	"je le dis et ne change rien. Exemples : `!approve #42`, `!reject @jean.dupont-exemple.fr:agent.externe.tchap.gouv.fr compte personnel`, " +
	"`!capacity 500`.\n\n" +
	"Vous pouvez aussi réagir ✅ ou ❌ à mon accusé de réception d'une demande pour la valider ou la refuser."

const textAgentHelpHeader = "Je suis l'**Assistant IA** des agents publics : posez votre question ici, je réponds avec Albert, " +
	"l'IA de l'État, en tenant compte de notre conversation.\n\n**Commandes** :\n\n"

const textAgentHelpFooter = "\nPour le reste, écrivez simplement votre question (texte uniquement)."

// textReverseHint follows the state of a rejected or revoked request: the
// way back is explicit.
func textReverseHint(req *approvals.Request) string {
	if req.Status != approvals.StatusRejected && req.Status != approvals.StatusRevoked {
		return ""
	}
	return fmt.Sprintf(" Pour revenir sur cette décision : `!reverse #%d`.", req.ID)
}

func textNothingToReverse(req *approvals.Request) string {
	return fmt.Sprintf("La demande n° %d de %s n'est ni refusée ni révoquée (%s) : rien à annuler.",
		req.ID, userText(req.UserID), statusLabel(req.Status))
}

func textNotLatest(n int64, user id.UserID) string {
	return fmt.Sprintf("La demande n° %d n'est plus la dernière de %s : tapez `!info %s` pour voir où en est sa demande actuelle.",
		n, userText(user), fmt.Sprintf("#%d", n))
}

func textReversed(req *approvals.Request) string {
	return fmt.Sprintf("↩️ Décision annulée : accès de %s validé (demande n° %d). Je lui écris en message privé.", userText(req.UserID), req.ID)
}
