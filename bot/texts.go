package bot

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"maunium.net/go/mautrix/id"

	"guichet/albert"
	"guichet/approvals"
	"guichet/conversation"
	"guichet/ratelimit"
	"guichet/store"
)

// Everything people read is here, in French, so it can be reviewed as a whole.

func textAcknowledged(user id.UserID, req *approvals.Request) string {
	renewed := ""
	if req.Renewal {
		renewed = " (nouvelle demande)"
	}
	return fmt.Sprintf("Bonjour %s, votre demande d'accès à l'Assistant IA est enregistrée sous le **n° %d**%s. "+
		"L'équipe la valide à la main, en général dans la journée ; vous recevrez alors un message privé de ma part.",
		mention(user), req.ID, renewed)
}

func textAutoApproved(user id.UserID, req *approvals.Request) string {
	return fmt.Sprintf("Bonjour %s, votre accès à l'Assistant IA est validé automatiquement (demande n° %d). "+
		"Je vous écris en message privé pour la suite.", mention(user), req.ID)
}

func textDenied(user id.UserID) string {
	return fmt.Sprintf("Bonjour %s, merci de votre intérêt. L'Assistant IA est réservé aux agents de la fonction publique ; "+
		"votre compte Tchap n'y donne pas accès. Si vous êtes agent public, écrivez-nous depuis votre compte professionnel.", mention(user))
}

func textWelcome(policyURL, policyVersion string) string {
	return fmt.Sprintf("Bonjour ! Votre accès à l'**Assistant IA** est validé.\n\n"+
		"Avant votre première question, merci de prendre connaissance de ces conditions :\n\n"+
		"- le service est **expérimental** et sans garantie de disponibilité ;\n"+
		"- vous restez **entièrement responsable** de l'usage que vous faites des réponses dans votre travail ;\n"+
		"- en cas de forte affluence, l'usage peut être **limité** ;\n"+
		"- l'usage est soumis à la %s (version %s) : "+
		"n'y copiez **aucune donnée confidentielle ni personnelle**.\n\n"+
		"Pour accepter ces conditions, répondez `!accepter`. Vous pourrez ensuite poser vos questions ici.",
		policyLink(policyURL), literal(policyVersion))
}

func textPolicyChanged(policyURL, policyVersion string) string {
	return fmt.Sprintf("Les conditions d'utilisation ont changé : merci de relire la %s "+
		"(version %s), puis de répondre `!accepter` pour continuer.", policyLink(policyURL), literal(policyVersion))
}

// policyLink links to the data policy.
func policyLink(url string) string {
	return link("politique de traitement des données", url)
}

const textAccepted = "Merci, vos conditions d'utilisation sont enregistrées. Vous pouvez poser votre question : " +
	"je vous réponds ici même."

const textAlreadyAccepted = "Vous avez déjà accepté les conditions : posez votre question quand vous voulez."

const textAcceptNotGranted = "Il n'y a rien à accepter pour le moment."

func textUnknownAgent(supportRoom id.RoomID) string {
	return "Bonjour ! Je suis l'Assistant IA des agents publics. Pour l'utiliser, demandez l'accès dans le salon " +
		"« L'Assistant IA | Support et retours » (" + roomLink(supportRoom) +
		") : présentez-vous en un message, l'équipe valide les demandes en général dans la journée."
}

func textPending(req *approvals.Request, now time.Time) string {
	return fmt.Sprintf("Votre demande d'accès (n° %d) est en attente de validation depuis %s. "+
		"Vous recevrez un message ici dès qu'elle sera traitée.", req.ID, since(req.CreatedAt, now))
}

func textWaitlisted(req *approvals.Request) string {
	return fmt.Sprintf("Votre demande (n° %d) est validée mais en liste d'attente : le service est très demandé. "+
		"Je vous écris dès qu'une place se libère.", req.ID)
}

func textRejectedStatus(req *approvals.Request) string {
	return "Votre demande d'accès n'a pas été acceptée" + decisionReason(req) +
		". Pour en reparler, écrivez dans le salon « L'Assistant IA | Support et retours »."
}

func textRevokedStatus(req *approvals.Request) string {
	return "Votre accès à l'Assistant IA a été retiré" + decisionReason(req) +
		". Pour en reparler, écrivez dans le salon « L'Assistant IA | Support et retours »."
}

func textRejectedNotice(user id.UserID, reason string) string {
	return fmt.Sprintf("%s, votre demande d'accès à l'Assistant IA n'a pas été acceptée%s. "+
		"Vous pouvez répondre ici si vous pensez qu'il s'agit d'une erreur.", mention(user), reasonSuffix(reason))
}

// reasonSuffix shows a moderator's reason, whatever it says.
func reasonSuffix(reason string) string {
	if strings.TrimSpace(reason) == "" {
		return ""
	}
	return " (motif : " + freeText(reason) + ")"
}

// decidedByRule reports whether req's last decision was taken by an access
// rule (access.deny, access.auto_approve) rather than by a moderator: a rule
// records no one in DecidedBy, and its name in Reason.
func decidedByRule(req *approvals.Request) bool {
	return req.DecidedBy == "" && req.Status != approvals.StatusPending
}

// decisionReason is the reason of req's last decision as the agent reads
// it: a moderator's reason is always shown; a rule's name says nothing to
// the agent and is not.
func decisionReason(req *approvals.Request) string {
	if decidedByRule(req) {
		return ""
	}
	return reasonSuffix(req.Reason)
}

const textNotModerator = "Désolé, seuls les modérateurs du salon peuvent utiliser cette commande. " +
	"Si vous souhaitez accéder à l'Assistant IA, écrivez simplement un message ici."

const textAssistantFailed = "Désolé, je n'arrive pas à joindre le service pour le moment. Réessayez dans quelques minutes."

const textEmptyAnswer = "Désolé, je n'ai pas obtenu de réponse cette fois-ci. Pouvez-vous reformuler votre question ?"

const textTextOnly = "Je ne lis que les messages texte : merci d'écrire votre question."

func textApproved(user id.UserID, req *approvals.Request, pre bool) string {
	if pre {
		return fmt.Sprintf("✅ %s est pré-validé (demande n° %d créée) : je lui écris en message privé.", userText(user), req.ID)
	}
	return fmt.Sprintf("✅ Accès de %s validé (demande n° %d) : je lui écris en message privé.", userText(user), req.ID)
}

func textRejected(user id.UserID, req *approvals.Request) string {
	return fmt.Sprintf("❌ Demande n° %d de %s refusée%s. Je l'en informe.", req.ID, userText(user), decisionReason(req))
}

func textAlreadyDecided(req *approvals.Request, now time.Time) string {
	var what string
	switch req.Status {
	case approvals.StatusApproved, approvals.StatusActive:
		what = "déjà validée"
	case approvals.StatusRejected:
		what = "déjà refusée"
	case approvals.StatusRevoked:
		what = "déjà révoquée"
	case approvals.StatusWaitlisted:
		what = "déjà en liste d'attente"
	default:
		what = "en attente"
	}
	by := ""
	if decidedByRule(req) {
		if req.Reason != "" {
			by = " par la règle " + code(req.Reason)
		}
	} else if req.DecidedBy != "" && req.DecidedBy != req.UserID {
		by = " par " + userText(req.DecidedBy)
	}
	return fmt.Sprintf("La demande n° %d de %s est %s%s %s.", req.ID, userText(req.UserID), what, by, ago(req.DecidedAt, now))
}

func textBadTargets(bad []string) string {
	return fmt.Sprintf("Je ne reconnais pas %s : indiquez un identifiant complet comme `@prenom.nom-ministere.gouv.fr:agent.dinum.tchap.gouv.fr`, "+
		"une mention, ou un numéro de demande comme `#42`.", quoteList(bad))
}

func textTooManyTargets(cmd string, max int) string {
	if max == 1 {
		return fmt.Sprintf("`!%s` ne prend qu'une demande à la fois : envoyez une commande par agent.", cmd)
	}
	return fmt.Sprintf("`!%s` prend au plus %d demandes à la fois : découpez la liste.", cmd, max)
}

func textNoTarget(cmd string) string {
	return fmt.Sprintf("Pour qui ? Exemple : %s.", code("!"+clip(cmd, maxEchoed)+" @prenom.nom-ministere.gouv.fr:agent.dinum.tchap.gouv.fr"))
}

func textUnknownRequest(n int64) string { return fmt.Sprintf("Il n'y a pas de demande n° %d.", n) }

func textNoRequest(user id.UserID) string {
	return fmt.Sprintf("%s n'a pas de demande en cours.", userText(user))
}

func textIsBot() string { return "Je ne peux pas me valider moi-même 🙂." }

func textIsModerator(user id.UserID) string {
	return fmt.Sprintf("%s est modérateur du salon : pas besoin de validation.", userText(user))
}

// maxListed bounds the requests listed in one notice, so it stays readable.
const maxListed = 50

func textPendingList(reqs []*approvals.Request, total int, now time.Time) string {
	if total == 0 {
		return "Aucune demande en attente. 🎉"
	}
	return fmt.Sprintf("**%d demande(s) en attente**, de la plus ancienne à la plus récente :\n\n", total) + pendingLines(reqs, total, now)
}

func pendingLines(reqs []*approvals.Request, total int, now time.Time) string {
	var b strings.Builder
	for _, r := range reqs {
		fmt.Fprintf(&b, "- n° %d — %s (%s) — attend depuis %s\n", r.ID, userText(r.UserID), literal(r.UserID.Homeserver()), since(r.CreatedAt, now))
	}
	if total > len(reqs) {
		fmt.Fprintf(&b, "\n… et %d autre(s).", total-len(reqs))
	}
	return b.String()
}

func textUnknownCommand(name string) string {
	return fmt.Sprintf("Je ne connais pas la commande %s. Tapez `!aide` pour la liste.", echoed("!"+name))
}

func since(t, now time.Time) string { return duration(now.Sub(t)) }

// duration says how long, in French, rounded for people.
func duration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return "moins d'une minute"
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h %02d", int(d.Hours()), int(d.Minutes())%60)
	default:
		return fmt.Sprintf("%d jours", int(d.Hours()/24))
	}
}

func ago(t, now time.Time) string {
	if t.IsZero() {
		return ""
	}
	if now.Sub(t) < time.Minute {
		return "à l'instant"
	}
	return "il y a " + since(t, now)
}

// maxQuoted bounds how many typed items a reply repeats.
const maxQuoted = 5

func quoteList(items []string) string {
	q := make([]string, 0, min(len(items), maxQuoted))
	for _, s := range items[:min(len(items), maxQuoted)] {
		q = append(q, echoed(s))
	}
	list := strings.Join(q, ", ")
	if n := len(items) - maxQuoted; n > 0 {
		list += fmt.Sprintf(" (et %d autre%s)", n, map[bool]string{true: "s", false: ""}[n > 1])
	}
	return list
}

func textAutoWaitlisted(user id.UserID, req *approvals.Request) string {
	return fmt.Sprintf("Bonjour %s, votre accès à l'Assistant IA est validé (demande n° %d), mais le service est très demandé : "+
		"vous êtes en liste d'attente. Je vous écris en message privé dès qu'une place se libère.", mention(user), req.ID)
}

func textWaitlistedNotice(user id.UserID) string {
	return fmt.Sprintf("%s, votre demande d'accès à l'Assistant IA est validée, mais le service est très demandé : "+
		"vous êtes en liste d'attente. Je vous écris dès qu'une place se libère.", mention(user))
}

func textApprovedWaitlisted(user id.UserID, req *approvals.Request, limit, used int) string {
	if limit == 0 {
		return fmt.Sprintf("⏳ %s est validé mais placé en liste d'attente (demande n° %d) : le mode surcharge est actif.", userText(user), req.ID)
	}
	return fmt.Sprintf("⏳ %s est validé mais placé en liste d'attente (demande n° %d) : capacité atteinte (%d/%d). "+
		"Il entrera dès qu'une place se libère (`!capacity` pour l'augmenter).", userText(user), req.ID, used, limit)
}

func textPromoted(users []string) string {
	if len(users) == 1 {
		return "Place libérée : " + usersText(users) + " sort de la liste d'attente ; je lui écris en message privé."
	}
	return "Places libérées : " + usersText(users) + " sortent de la liste d'attente ; je leur écris en message privé."
}

func textRevoked(user id.UserID, req *approvals.Request) string {
	return fmt.Sprintf("🚫 Accès de %s retiré (demande n° %d)%s. Je l'en informe.", userText(user), req.ID, decisionReason(req))
}

func textRevokedNotice(user id.UserID, reason string) string {
	return fmt.Sprintf("%s, votre accès à l'Assistant IA a été retiré%s. Pour en reparler, écrivez dans le salon "+
		"« L'Assistant IA | Support et retours ».", mention(user), reasonSuffix(reason))
}

func textNotGranted(req *approvals.Request) string {
	return fmt.Sprintf("%s n'a pas d'accès à retirer (demande n° %d : %s).", userText(req.UserID), req.ID, statusLabel(req.Status))
}

func textUnknownUser(user id.UserID) string {
	return fmt.Sprintf("Je ne trouve pas de compte %s : vérifiez l'identifiant.", userText(user))
}

func textNotModeratorReaction(user id.UserID) string {
	return fmt.Sprintf("%s, seuls les modérateurs du salon peuvent valider ou refuser une demande.", mention(user))
}

const textCapacityUsage = "Usage : `!capacity` pour voir la capacité, `!capacity 500` pour la fixer (0 : sans limite)."

// profileOf prefixes a moderator's answer about a partner with its name.
func profilePrefix(name string, partner bool) string {
	if !partner {
		return ""
	}
	return "**" + literal(name) + "** : "
}

func textCapacity(name string, partner bool, limit, used, waitlisted int, overload bool) string {
	max := "sans limite"
	if limit > 0 {
		max = fmt.Sprintf("%d", limit)
	}
	s := profilePrefix(name, partner) + fmt.Sprintf("Agents avec accès : **%d** (maximum : %s). En liste d'attente : %d.", used, max, waitlisted)
	if overload {
		s += " Le mode surcharge est actif : les nouvelles validations vont en liste d'attente."
	}
	return s
}

func textCapacitySet(name string, partner bool, limit, used int) string {
	if limit == 0 {
		return profilePrefix(name, partner) + fmt.Sprintf("Capacité : sans limite (%s avec accès).", plural(used, "agent", "agents"))
	}
	return profilePrefix(name, partner) + fmt.Sprintf("Capacité fixée à %s (%d avec accès).", plural(limit, "agent", "agents"), used)
}

func textUnknownPartner(arg string, ids []string) string {
	if len(ids) == 0 {
		return fmt.Sprintf("Aucun partenaire n'est configuré : %s ne désigne rien.", echoed(arg))
	}
	var known []string
	for _, id := range ids {
		known = append(known, code(id))
	}
	return fmt.Sprintf("Je ne connais pas le partenaire %s. Partenaires : %s.", echoed(arg), strings.Join(known, ", "))
}

func textInfoPartner(name, pid string) string {
	return fmt.Sprintf("Partenaire : **%s** (%s) : ses questions passent par la clé et les limites de ce partenaire.", literal(name), code(pid))
}

func textStatsOf(name string) string {
	return fmt.Sprintf("Chiffres du jour du partenaire **%s** :", literal(name))
}

const textNoPartners = "Aucune administration partenaire n'est configurée (section `partners` de la configuration)."

// partnerState is what holds a profile's questions back.
type partnerState struct {
	paused  bool
	reason  albert.Class
	until   time.Time
	breaker bool
}

// partnerRow is one partner in !partenaires.
type partnerRow struct {
	id, name     string
	counts       map[approvals.Status]int
	limit        int
	today, month store.Stats
	budget       *float64 // euros left, nil: unlimited
	budgetKnown  bool
	expires      time.Time
	state        partnerState
}

// stateText says whether a partner's agents are answered.
func stateText(st partnerState, now time.Time, loc *time.Location) string {
	switch {
	case st.paused && st.reason == albert.ClassDailyLimit:
		return "⏸️ en pause " + untilText(st.until, now, loc) + " (limite quotidienne)"
	case st.paused:
		return "⏸️ en pause (budget épuisé)"
	case st.breaker:
		return "⚠️ ralenti (Albert refuse en série)"
	}
	return "✅ actif"
}

func textPartnerTrouble(name, pid string, st partnerState, now time.Time, loc *time.Location) string {
	return fmt.Sprintf("Partenaire **%s** (%s) : %s.", literal(name), code(pid), stateText(st, now, loc))
}

// thousands writes n with French thousands separators (narrow no-break
// spaces): 1 234 567.
func thousands(n int) string {
	digits := strconv.Itoa(n)
	neg := strings.HasPrefix(digits, "-")
	digits = strings.TrimPrefix(digits, "-")
	var out []string
	for len(digits) > 3 {
		out = append([]string{digits[len(digits)-3:]}, out...)
		digits = digits[:len(digits)-3]
	}
	out = append([]string{digits}, out...)
	s := strings.Join(out, "\u202f")
	if neg {
		s = "-" + s
	}
	return s
}

// euros writes an amount in euros the French way: cents, or four decimals
// under one euro so that a day of small calls does not read as free.
func euros(v float64) string {
	digits := 2
	if v != 0 && v < 1 && v > -1 {
		digits = 4
	}
	return strings.Replace(strconv.FormatFloat(v, 'f', digits, 64), ".", ",", 1) + " €"
}

func textPartners(rows []partnerRow, now time.Time, loc *time.Location) string {
	var b strings.Builder
	b.WriteString("Administrations partenaires :\n")
	for _, r := range rows {
		active := r.counts[approvals.StatusApproved] + r.counts[approvals.StatusActive]
		fmt.Fprintf(&b, "\n**%s** (%s) : %s\n", literal(r.name), code(r.id), stateText(r.state, now, loc))
		max := ""
		if r.limit > 0 {
			max = fmt.Sprintf(" (maximum %d)", r.limit)
		}
		fmt.Fprintf(&b, "- agents : %d avec accès%s, %d en liste d'attente, %d demandes en attente\n",
			active, max, r.counts[approvals.StatusWaitlisted], r.counts[approvals.StatusPending])
		// Tokens and cost of every call, as the billing report counts them.
		fmt.Fprintf(&b, "- aujourd'hui : %s, %s tokens facturés, %s\n", plural(r.today.Questions, "question", "questions"),
			thousands(r.today.BilledTokens), euros(r.today.Cost))
		fmt.Fprintf(&b, "- ce mois-ci : %s, %s tokens facturés, %s\n", plural(r.month.Questions, "question", "questions"),
			thousands(r.month.BilledTokens), euros(r.month.Cost))
		switch {
		case r.state.paused && r.state.reason == albert.ClassBudget:
			b.WriteString("- budget : épuisé (Albert refuse ses questions)\n")
		case !r.budgetKnown:
			b.WriteString("- budget : inconnu (compte Albert pas encore lu)\n")
		case r.budget == nil:
			b.WriteString("- budget : illimité\n")
		default:
			fmt.Fprintf(&b, "- budget restant : %s\n", euros(*r.budget))
		}
		if !r.expires.IsZero() {
			fmt.Fprintf(&b, "- clé valable jusqu'au %s\n", r.expires.In(loc).Format("02/01/2006"))
		}
	}
	return strings.TrimRight(b.String(), "\n")
}

func statusLabel(s approvals.Status) string {
	switch s {
	case approvals.StatusPending:
		return "en attente"
	case approvals.StatusWaitlisted:
		return "en liste d'attente"
	case approvals.StatusApproved:
		return "validée, conditions pas encore acceptées"
	case approvals.StatusActive:
		return "active"
	case approvals.StatusRejected:
		return "refusée"
	case approvals.StatusRevoked:
		return "révoquée"
	}
	return "inconnue"
}

var actionLabels = map[string]string{
	approvals.ActionRequest: "demande", approvals.ActionAutoApprove: "validation automatique",
	approvals.ActionDeny: "refus automatique", approvals.ActionApprove: "validation",
	approvals.ActionPreApprove: "pré-validation", approvals.ActionReject: "refus",
	approvals.ActionConsent: "acceptation des conditions", approvals.ActionRefused: "commande refusée",
	approvals.ActionWaitlist: "liste d'attente", approvals.ActionPromote: "sortie de liste d'attente",
	approvals.ActionRevoke: "révocation", approvals.ActionReverse: "annulation d'une décision",
	approvals.ActionQuota: "limites modifiées", approvals.ActionRefusedQuiet: "commande refusée (sans réponse)",
	approvals.ActionUndecryptable: "message indéchiffrable", approvals.ActionUndecryptableQuiet: "message indéchiffrable (sans réponse)",
	approvals.ActionCapacity: "capacité", approvals.ActionOverload: "mode surcharge",
}

func textInfo(user id.UserID, st approvals.Standing, audit []approvals.AuditEntry, usage store.UsageTotals, loc *time.Location) string {
	var b strings.Builder
	if st.Request == nil {
		fmt.Fprintf(&b, "%s : aucune demande.", userText(user))
	} else {
		consent := "conditions non acceptées (version actuelle)"
		if st.Consented {
			consent = "conditions acceptées"
		}
		fmt.Fprintf(&b, "%s : demande n° %d, **%s**, %s. Usage : %d question(s), %d tokens.", userText(user), st.Request.ID,
			statusLabel(st.Request.Status), consent, usage.Questions, usage.PromptTokens+usage.CompletionTokens)
	}
	if len(audit) > 0 {
		b.WriteString("\n\nHistorique :\n")
		start := max(0, len(audit)-20)
		for _, e := range audit[start:] {
			label := actionLabels[e.Action]
			if label == "" {
				label = literal(e.Action)
			}
			when := e.At.In(loc).Format("02/01/2006 15:04")
			switch e.Action {
			case approvals.ActionAutoApprove, approvals.ActionDeny:
				// Decided by a rule, whose name is the reason; the actor
				// recorded is the person who asked.
				fmt.Fprintf(&b, "\n- %s : %s (règle %s)", when, label, code(e.Reason))
				continue
			case approvals.ActionConsent:
				fmt.Fprintf(&b, "\n- %s : %s par %s (version %s)", when, label, userText(e.Actor), literal(e.Reason))
				continue
			}
			fmt.Fprintf(&b, "\n- %s : %s par %s%s", when, label, userText(e.Actor), reasonSuffix(e.Reason))
		}
	}
	return b.String()
}

func textReminder(stale []*approvals.Request, total int, after time.Duration, now time.Time) string {
	return fmt.Sprintf("⏰ Rappel : %d demande(s) attendent depuis plus de %s.\n\n", total, duration(after)) +
		pendingLines(stale, total, now) +
		"\n\nPour décider : `!approve #numéro` ou `!reject #numéro motif`."
}

const textUndecryptable = "Je n'ai pas pu déchiffrer votre dernier message. Pouvez-vous l'envoyer à nouveau ? " +
	"(Si cela se reproduit, fermez et rouvrez Tchap.)"

const textGroupRoom = "Je ne réponds qu'en message privé (conversation à deux). Je quitte ce salon ; " +
	"écrivez-moi directement pour me poser vos questions."

const textAnswerCut = "_(Réponse interrompue : le service a rencontré une erreur. Vous pouvez reposer la question.)_"

func textTooLong(n, max int) string {
	return fmt.Sprintf("Votre message est trop long (%d caractères ; maximum %d). Raccourcissez-le ou découpez-le en plusieurs questions.", n, max)
}

func textNewConversation(idle time.Duration) string {
	return fmt.Sprintf("🆕 Nouvelle conversation (plus de %s sans échange) : je ne tiens plus compte des messages précédents.", duration(idle))
}

func textModelGone(model, fallback string) string {
	return fmt.Sprintf("Le modèle %s n'est plus disponible : je repasse sur le modèle par défaut, %s.", code(model), code(fallback))
}

func textModelDailyLimit(model, fallback string) string {
	return fmt.Sprintf("Le modèle %s a atteint sa limite pour aujourd'hui : je repasse sur le modèle par défaut, %s.", code(model), code(fallback))
}

// textAlbertError is what an agent reads when no answer could be obtained.
func textAlbertError(class albert.Class) string {
	switch class {
	case albert.ClassBudget:
		return "Le service est suspendu pour le moment (budget épuisé). L'équipe est prévenue ; réessayez plus tard."
	case albert.ClassAuth:
		return "Le service est indisponible pour le moment. L'équipe est prévenue ; réessayez plus tard."
	case albert.ClassInvalid:
		return "Je n'ai pas pu traiter cette question. Pouvez-vous la reformuler, peut-être plus courte ?"
	case albert.ClassNotFound:
		return "Le modèle demandé n'est pas disponible. Choisissez-en un autre avec `!modele`."
	case albert.ClassRateLimited, albert.ClassBusy, albert.ClassTimeout:
		return "Le service est très sollicité en ce moment et n'a pas pu répondre. Réessayez dans quelques minutes."
	}
	return "Je n'arrive pas à joindre le service pour le moment. Réessayez dans quelques minutes."
}

func textOpsIncident(name string, partner bool, err *albert.Error) string {
	return fmt.Sprintf("🚨 Incident Albert API%s : **%s**%s. Les agents reçoivent un message d'excuse ; prochaine alerte à la résolution.",
		keyOwner(name, partner), literal(string(err.Class)), statusSuffix(err))
}

func statusSuffix(err *albert.Error) string {
	if err.Status == 0 {
		return ""
	}
	return fmt.Sprintf(" (HTTP %d)", err.Status)
}

func textOpsResolved(name string, partner bool, class albert.Class, d time.Duration) string {
	return fmt.Sprintf("✅ Incident Albert API%s **%s** résolu après %s.", keyOwner(name, partner), literal(string(class)), duration(d))
}

const textConversationReset = "C'est noté : nous commençons une nouvelle conversation."

const textForgetConfirm = "Cela effacera définitivement vos conversations enregistrées avec moi. " +
	"Pour confirmer, tapez `!oublier confirmer`."

const textForgotten = "C'est fait : vos conversations enregistrées sont effacées. Seuls des compteurs d'usage anonymes sont conservés."

const textModeratorCommandInDM = "Les commandes des modérateurs se tapent dans le salon « L'Assistant IA | Support et retours »."

func textConditions(url, version string, accepted time.Time, ok bool, loc *time.Location) string {
	s := fmt.Sprintf("L'usage de l'Assistant IA est soumis à la %s (version %s).", policyLink(url), literal(version))
	if ok {
		return s + " Vous l'avez acceptée le " + accepted.In(loc).Format("02/01/2006 à 15:04") + "."
	}
	return s + " Vous ne l'avez pas encore acceptée : répondez `!accepter`."
}

func textModels(models []string, current string) string {
	var b strings.Builder
	b.WriteString("Modèles disponibles :\n\n")
	for _, m := range models {
		mark := ""
		if m == current {
			mark = " ← actuel"
		}
		fmt.Fprintf(&b, "- %s%s\n", code(m), mark)
	}
	b.WriteString("\nPour changer : `!modele <id>`.")
	return b.String()
}

func textModelChosen(model string) string {
	return fmt.Sprintf("C'est noté : je réponds désormais avec le modèle %s.", code(model))
}

func textModelUnknown(model string, models []string) string {
	return fmt.Sprintf("Le modèle %s n'est pas disponible. ", echoed(model)) + textModels(models, "")
}

const textModelsUnavailable = "Je n'arrive pas à obtenir la liste des modèles pour le moment. Réessayez dans quelques minutes."

// textSources is the list under an answer built from excerpts: the
// documents of the ones it cites (all of them when it cites none), each once
// with the numbers of its excerpts, its collection and its link.
func textSources(sources []conversation.Source) string {
	var b strings.Builder
	b.WriteString("**Sources**\n")
	for i, src := range sources {
		if slices.ContainsFunc(sources[:i], func(o conversation.Source) bool { return sameDocument(o, src) }) {
			continue
		}
		var numbers []string
		for _, o := range sources[i:] {
			if sameDocument(o, src) {
				numbers = append(numbers, literal(fmt.Sprintf("[%d]", o.N)))
			}
		}
		fmt.Fprintf(&b, "\n- %s %s", strings.Join(numbers, " "), webLink(src.DocumentName(), src.URL))
		if src.Collection != "" {
			fmt.Fprintf(&b, " — %s", literal(src.Collection))
		}
	}
	return b.String()
}

func sameDocument(a, b conversation.Source) bool {
	return a.CollectionID == b.CollectionID && a.DocumentID == b.DocumentID
}

// textSearchFailed ends an answer whose search failed.
const textSearchFailed = "_La recherche dans les documents de référence n'a pas abouti : cette réponse ne s'appuie sur aucune source._"

const textNoAnswerYet = "Je n'ai encore répondu à aucune de vos questions."

const textNoSources = "Ma dernière réponse ne s'appuie sur aucun extrait de document : la recherche n'a rien trouvé de pertinent, " +
	"n'a pas abouti, ou vous avez choisi `!collections aucune`."

const textRetrievalOff = "La recherche dans les documents de référence n'est pas activée sur ce service : " +
	"mes réponses viennent du modèle seul."

// textSourcesDetail shows the excerpts behind the last answer (!sources).
func textSourcesDetail(sources []conversation.Source) string {
	var b strings.Builder
	b.WriteString("Extraits sur lesquels s'appuie ma dernière réponse :\n")
	for _, src := range sources {
		fmt.Fprintf(&b, "\n**%s %s**", literal(fmt.Sprintf("[%d]", src.N)), literal(src.DocumentName()))
		var about []string
		if src.Collection != "" {
			about = append(about, literal(src.Collection))
		}
		about = append(about, "pertinence "+strings.Replace(strconv.FormatFloat(src.Score, 'f', 2, 64), ".", ",", 1))
		fmt.Fprintf(&b, " (%s)", strings.Join(about, ", "))
		if src.URL != "" && isWebURL(src.URL) {
			fmt.Fprintf(&b, "\n%s", webLink(src.URL, src.URL))
		}
		fmt.Fprintf(&b, "\n> %s\n", literal(strings.TrimSpace(src.Content)))
	}
	return b.String()
}

// textCollections lists the offered collections, marking those in use.
func textCollections(offered []conversation.Offered) string {
	var b strings.Builder
	b.WriteString("Collections de documents où je cherche avant de répondre (✅ : utilisée pour vos questions) :\n")
	for _, o := range offered {
		mark := "⬜"
		if o.InUse {
			mark = "✅"
		}
		fmt.Fprintf(&b, "\n- %s %s", mark, code(strconv.Itoa(o.ID)))
		if !o.Known {
			b.WriteString(" (nom indisponible)")
			continue
		}
		fmt.Fprintf(&b, " **%s**", literal(o.Name))
		if d := strings.TrimSpace(o.Description); d != "" {
			fmt.Fprintf(&b, " : %s", freeText(d))
		}
		if o.Documents > 0 {
			fmt.Fprintf(&b, " (%s)", plural(o.Documents, "document", "documents"))
		}
	}
	b.WriteString("\n\nPour choisir : `!collections <id> <id>`, `!collections tout` ou `!collections aucune`.")
	return b.String()
}

func textCollectionUnknown(arg string) string {
	if arg == "" {
		return "Indiquez les numéros des collections à utiliser, `tout` ou `aucune`."
	}
	return fmt.Sprintf("Je ne peux pas utiliser %s : choisissez parmi les collections proposées, ou `tout`, ou `aucune`.", echoed(arg))
}

// textCollectionsChosen confirms a choice of collections.
func textCollectionsChosen(inUse []int, offered []conversation.Offered) string {
	if len(inUse) == 0 {
		return "C'est noté : je ne cherche plus dans les documents de référence ; mes réponses viendront du modèle seul. " +
			"`!collections tout` pour revenir en arrière."
	}
	var names []string
	for _, o := range offered {
		if slices.Contains(inUse, o.ID) {
			name := code(strconv.Itoa(o.ID))
			if o.Known {
				name += " " + literal(o.Name)
			}
			names = append(names, name)
		}
	}
	return "C'est noté : je cherche désormais dans " + strings.Join(names, ", ") + "."
}

// plural writes a count with the French singular (0 and 1) or plural.
func plural(n int, one, many string) string {
	if n <= 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}

// textLimited tells an agent which limit they hit and exactly when they can
// ask again.
func textLimited(kind ratelimit.Kind, retryAt, now time.Time, loc *time.Location) string {
	when := "à " + retryAt.In(loc).Format("15:04:05")
	if retryAt.In(loc).YearDay() != now.In(loc).YearDay() {
		when = "demain à partir de " + retryAt.In(loc).Format("15:04")
	}
	switch kind {
	case ratelimit.PerMinute:
		return fmt.Sprintf("Vous posez beaucoup de questions d'affilée : merci de patienter un peu. Vous pourrez reposer votre question %s (dans %s).",
			when, durationPrecise(retryAt.Sub(now)))
	case ratelimit.PerDay:
		return fmt.Sprintf("Vous avez atteint votre nombre de questions pour aujourd'hui. Vous pourrez en poser de nouvelles %s.", when)
	default:
		return fmt.Sprintf("Vous avez atteint votre volume de texte (tokens) pour aujourd'hui. Vous pourrez poser de nouvelles questions %s.", when)
	}
}

func textLimitWarning(kind ratelimit.Kind) string {
	if kind == ratelimit.TokensPerDay {
		return "ℹ️ Vous avez utilisé 80 % de votre volume de texte du jour. `!quota` pour le détail."
	}
	return "ℹ️ Vous avez utilisé 80 % de vos questions du jour. `!quota` pour le détail."
}

func textQueuePosition(position int) string {
	return fmt.Sprintf("⏳ Beaucoup de demandes en ce moment : votre question est n° %d dans la file, je vous réponds dès que possible.", position)
}

const textSaturated = "Le service est saturé en ce moment : je ne peux pas prendre votre question. Réessayez dans quelques minutes."

const textBreakerWait = "⏳ Albert est surchargé en ce moment : votre question partira dès qu'il ira mieux. Inutile de la renvoyer."

func textBreakerOpened(name string, partner bool) string {
	if partner {
		return fmt.Sprintf("⚠️ Albert API refuse en série les appels%s (erreurs 429/503/504 répétées) : je ralentis ses appels et préviens ses agents qui attendent ; "+
			"les autres profils ne sont pas ralentis. Je vous écrirai quand ce sera rétabli.", keyOwner(name, partner))
	}
	return "⚠️ Albert API est surchargé (erreurs 429/503/504 répétées) : je ralentis les appels et préviens les agents qui attendent. " +
		"Je vous écrirai quand ce sera rétabli."
}

func textBreakerClosed(name string, partner bool) string {
	if partner {
		return fmt.Sprintf("✅ Albert API répond de nouveau normalement%s : ses appels reprennent.", keyOwner(name, partner))
	}
	return "✅ Albert API répond de nouveau normalement : les appels reprennent."
}

// durationPrecise is duration with seconds, for short waits.
func durationPrecise(d time.Duration) string {
	if d < time.Minute {
		return fmt.Sprintf("%d s", int(d.Seconds()+0.999))
	}
	return duration(d)
}

func limitLine(n int, unit string) string {
	if n == 0 {
		return "sans limite"
	}
	return fmt.Sprintf("%d %s", n, unit)
}

// textMyQuota is an agent's !quota: what is left today and when it resets.
func textMyQuota(q ratelimit.Quota, over bool, loc *time.Location) string {
	if q.Exempt {
		return fmt.Sprintf("Aujourd'hui : %d question(s), %d tokens. Votre compte n'a pas de limite.", q.MessagesToday, q.TokensToday)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "**Votre usage aujourd'hui** (remise à zéro %s) :\n\n", q.ResetAt.In(loc).Format("le 02/01 à 15:04"))
	fmt.Fprintf(&b, "- questions : %d sur %s%s\n", q.MessagesToday, limitLine(q.Limits.MessagesPerDay, "par jour"), left(q.Limits.MessagesPerDay, q.MessagesToday))
	fmt.Fprintf(&b, "- volume de texte : %d tokens sur %s%s\n", q.TokensToday, limitLine(q.Limits.TokensPerDay, "par jour"), left(q.Limits.TokensPerDay, q.TokensToday))
	fmt.Fprintf(&b, "- rythme : %s", limitLine(q.Limits.MessagesPerMinute, "questions par minute"))
	if over {
		b.WriteString("\n\nLe service est en mode surcharge : les limites sont réduites pour le moment.")
	}
	return b.String()
}

func left(limit, used int) string {
	if limit == 0 {
		return ""
	}
	return fmt.Sprintf(" (reste %d)", max(0, limit-used))
}

func textQuotaOf(user id.UserID, q ratelimit.Quota, loc *time.Location) string {
	kind := "limites par défaut"
	switch {
	case q.Exempt:
		kind = "exempté de limites (limits.exempt)"
	case q.Override:
		kind = "limites personnalisées"
	}
	return fmt.Sprintf("%s : %s. Aujourd'hui %d question(s) sur %s, %d tokens sur %s, rythme %s.",
		userText(user), kind, q.MessagesToday, limitLine(q.Limits.MessagesPerDay, "par jour"), q.TokensToday,
		limitLine(q.Limits.TokensPerDay, "par jour"), limitLine(q.Limits.MessagesPerMinute, "par minute"))
}

const textQuotaUsage = "Usage : `!quota @agent` pour voir ses limites ; `!quota @agent 500/jour`, `!quota @agent 200000 tokens`, " +
	"`!quota @agent 10/min` pour les changer (plusieurs à la fois possible) ; `!quota @agent défaut` pour revenir aux limites par défaut."

const textOverloadUsage = "Usage : `!surcharge on` ou `!surcharge off`."

func textOverloadState(on bool) string {
	if on {
		return "Le mode surcharge est **actif** : limites par agent réduites, nouvelles validations en liste d'attente."
	}
	return "Le mode surcharge est inactif."
}

func textOverloadSet(on bool, factor float64) string {
	if on {
		return fmt.Sprintf("⚠️ Mode surcharge activé : les limites par agent sont multipliées par %.2g et les nouvelles validations vont en liste d'attente.", factor)
	}
	return "✅ Mode surcharge désactivé : limites normales, validations directes."
}

func textStats(st store.Stats, gate ratelimit.GateStats, breaker string, over bool, limit, used int) string {
	var b strings.Builder
	b.WriteString("**Aujourd'hui**\n\n")
	fmt.Fprintf(&b, "- agents actifs : %d ; questions : %d ; tokens : %d envoyés, %d reçus\n", st.ActiveAgents, st.Questions, st.PromptTokens, st.CompletionTokens)
	fmt.Fprintf(&b, "- temps de réponse : p50 %s, p95 %s\n", st.LatencyP50.Round(time.Millisecond), st.LatencyP95.Round(time.Millisecond))
	if len(st.ErrorsByClass) == 0 {
		b.WriteString("- erreurs Albert : aucune\n")
	} else {
		classes := make([]string, 0, len(st.ErrorsByClass))
		for c := range st.ErrorsByClass {
			classes = append(classes, c)
		}
		slices.Sort(classes)
		parts := make([]string, len(classes))
		for i, c := range classes {
			parts[i] = fmt.Sprintf("%s %d", literal(c), st.ErrorsByClass[c])
		}
		b.WriteString("- erreurs Albert : " + strings.Join(parts, ", ") + "\n")
	}
	if st.Searches > 0 {
		fmt.Fprintf(&b, "- recherches documentaires : %d, dont %d en échec (réponses sans sources)\n", st.Searches, st.SearchFailures)
	}
	fmt.Fprintf(&b, "- file d'attente : %d en cours, %d en attente\n", gate.InFlight, gate.Queued)
	breakerLabel := map[string]string{ratelimit.BreakerClosed: "fermé (normal)", ratelimit.BreakerOpen: "ouvert (Albert surchargé)", ratelimit.BreakerHalfOpen: "en test"}[breaker]
	fmt.Fprintf(&b, "- disjoncteur Albert : %s ; mode surcharge : %s\n", breakerLabel, map[bool]string{true: "actif", false: "inactif"}[over])
	max := "sans limite"
	if limit > 0 {
		max = fmt.Sprintf("%d", limit)
	}
	fmt.Fprintf(&b, "- agents avec accès : %d (maximum : %s)", used, max)
	return b.String()
}

// Command tables (bot/commands.go) and decisions on one request.

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

// Albert API's 2026 answers: a key paused by its daily limit or its spent
// budget, a model closed to the key.

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
// textDefaultProfile names the top-level settings' profile to moderators.
const textDefaultProfile = "Profil par défaut"

// keyOwner names whose Albert key it is, for moderators: "" for the default
// profile (the service's own key), " du partenaire « <name> »" for a
// partner's (a name may or may not take an article: "de Ministère" is wrong).
func keyOwner(name string, partner bool) string {
	if !partner {
		return ""
	}
	return " du partenaire « " + literal(name) + " »"
}

func textKeyPaused(name string, partner bool, class albert.Class, until, now time.Time, loc *time.Location) string {
	if partner {
		if class == albert.ClassDailyLimit {
			return fmt.Sprintf("⏸️ L'accès de votre administration (%s) à l'Assistant IA est en pause %s : "+
				"le nombre de questions que lui accorde Albert pour la journée est atteint. Vous pourrez reposer votre question à partir de ce moment-là.",
				literal(name), untilText(until, now, loc))
		}
		return fmt.Sprintf("⏸️ L'accès de votre administration (%s) à l'Assistant IA est suspendu pour le moment : son budget est épuisé. "+
			"L'équipe support est prévenue ; réessayez plus tard.", literal(name))
	}
	if class == albert.ClassDailyLimit {
		return fmt.Sprintf("⏸️ Le service est en pause %s : le nombre de questions que nous accorde Albert pour la journée est atteint. "+
			"Vous pourrez reposer votre question à partir de ce moment-là.", untilText(until, now, loc))
	}
	return "⏸️ Le service est suspendu pour le moment (budget épuisé). L'équipe est prévenue ; réessayez plus tard."
}

// textModsKeyPaused tells the support room, once, that guichet stopped
// calling Albert and until when.
func textModsKeyPaused(name string, partner bool, class albert.Class, until, now time.Time, loc *time.Location) string {
	who, service := "", "le service"
	if partner {
		who, service = keyOwner(name, partner), "l'accès de ses agents"
	}
	if class == albert.ClassDailyLimit {
		return fmt.Sprintf("⏸️ Albert API refuse nos questions : la limite quotidienne de la clé d'API%s est atteinte. "+
			"Je mets %s en pause %s ; les agents qui écrivent d'ici là en sont informés. Je vous préviendrai à la reprise.",
			who, service, untilText(until, now, loc))
	}
	return fmt.Sprintf("⏸️ Albert API refuse nos questions : le budget de la clé d'API%s est épuisé. "+
		"Je mets %s en pause et réessaierai de temps en temps ; les agents qui écrivent en sont informés. "+
		"Je vous préviendrai à la reprise.", who, service)
}

// textModsKeyExpires warns moderators that a key expires soon.
func textModsKeyExpires(name string, partner bool, expires, now time.Time, loc *time.Location) string {
	return fmt.Sprintf("⏳ La clé d'API Albert%s expire %s (%s) : faites-la renouveler avant, sinon les questions de ses agents seront refusées.",
		keyOwner(name, partner), untilText(expires, now, loc), expires.In(loc).Format("02/01/2006"))
}

// textStatsPaused is the line of !stats while the key is paused.
func textStatsPaused(class albert.Class, until, now time.Time, loc *time.Location) string {
	why := "budget épuisé"
	if class == albert.ClassDailyLimit {
		why = "limite quotidienne atteinte"
	}
	return fmt.Sprintf("- ⏸️ clé Albert en pause (%s) %s", why, untilText(until, now, loc))
}

// textModsKeyResumed tells the support room that Albert answers again after
// a pause.
func textModsKeyResumed(name string, partner bool, class albert.Class) string {
	why := "limite quotidienne"
	if class == albert.ClassBudget {
		why = "budget épuisé"
	}
	if partner {
		return fmt.Sprintf("▶️ Albert API accepte de nouveau les questions%s (fin de la pause : %s) : l'accès de ses agents a repris.", keyOwner(name, partner), why)
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

// undeliveredLabel names, for the moderators, a message to an agent about
// their access.
func undeliveredLabel(kind store.Kind) string {
	switch kind {
	case store.KindWelcome:
		return "le message de bienvenue"
	case store.KindWaitlisted:
		return "l'avis de mise en liste d'attente"
	case store.KindRejected:
		return "l'avis de refus"
	case store.KindRevoked:
		return "l'avis de retrait d'accès"
	}
	return "un message"
}

// textModsUndelivered tells the moderators that guichet gave up telling an
// agent about their access, and why, so that they reach them another way.
func textModsUndelivered(user id.UserID, kind store.Kind, requestID int64, why failure) string {
	var cause string
	switch why {
	case failureGone:
		cause = "la personne a quitté la conversation privée ou refusé l'invitation"
	case failureUnreachable:
		cause = "impossible de l'inviter en message privé (compte inexistant ou serveur injoignable)"
	case failureRefused:
		cause = "le serveur a refusé le message"
	default:
		cause = "le serveur n'a pas répondu, malgré plusieurs essais"
	}
	request := ""
	if requestID != 0 {
		request = fmt.Sprintf(" (demande n° %d)", requestID)
	}
	return fmt.Sprintf("⚠️ Je n'ai pas pu remettre %s à %s%s : %s. Prévenez cette personne autrement ; "+
		"si elle m'écrit en message privé, je lui redirai où en est sa demande.",
		undeliveredLabel(kind), userText(user), request, cause)
}

// textAnswerUndelivered tells an agent that an answer could not be
// delivered to them.
const textAnswerUndelivered = "⚠️ Je n'ai pas pu vous remettre ma réponse à l'une de vos questions. " +
	"Si vous l'attendez encore, posez-la de nouveau ici."

// textHookDown tells the moderators that decisions do not reach the
// receiver configured in hooks.decisions_url.
func textHookDown(requestID int64, gaveUp, refused bool) string {
	state := "Je réessaie, mais les décisions suivantes attendent qu'il réponde."
	switch {
	case gaveUp && refused:
		state = "Il a refusé la décision : je ne la lui renverrai pas."
	case gaveUp:
		state = "J'ai renoncé à la lui transmettre après de nombreux essais."
	}
	return fmt.Sprintf("⚠️ Le service qui reçoit les décisions d'accès (hooks.decisions_url) ne les accepte pas : "+
		"la décision sur la demande n° %d ne lui est pas parvenue. %s Prévenez l'équipe qui l'exploite.", requestID, state)
}
