"""The phrases that classify a reply, in English, German, French and Spanish, and what
they capture (the new outlet or address of someone who moved). No I/O.

Each table is one regular expression per meaning; the classifier
(:mod:`mailer.inbound.classify`) reports the text each one matched as its evidence.
They run on the reply's own text (the quoted release is cut off first), so a release
that says "unsubscribe" in its footer never reads as a request.
"""

from __future__ import annotations

import re

_F = re.IGNORECASE

#: away from the office (the text of an out-of-office reply)
OUT_OF_OFFICE = re.compile(
    r"\b(?:out of (?:the )?office|away from (?:the |my )?(?:office|desk)|on (?:annual |parental |sick )?leave"
    r"|on (?:holiday|vacation)|i am (?:currently )?(?:away|out|travell?ing|off)|i'm (?:currently )?(?:away|out|off)"
    r"|limited access to (?:my )?e-?mail|away until|out until|back (?:in the office )?on"
    r"|(?:bin|ist) (?:derzeit |zurzeit |momentan |bis .{1,30} )?(?:nicht im büro|abwesend|im urlaub|nicht erreichbar)"
    r"|abwesenheitsnotiz|außer haus|ausser haus|nicht im büro|im urlaub"
    r"|(?:je suis |suis )?(?:actuellement )?absente?\b|en congés?|en vacances|hors du bureau|message d'absence"
    r"|de retour le"
    r"|(?:estoy |me encuentro )?(?:actualmente )?fuera de (?:la )?oficina|de vacaciones|ausente|no estaré disponible"
    r"|estaré de vuelta|regresaré el)",
    _F,
)

#: no longer at the outlet, the address no longer read
LEFT_OUTLET = re.compile(
    r"\b(?:(?:i am|i'm|is|are) no longer (?:with|at|working (?:at|for)|employed (?:at|by)|part of|writing for)"
    r"|no longer (?:works?|writes?) (?:at|for)|(?:(?:i|she|he|they) (?:have|has)|i've|she's"
    r"|he's) (?:now )?left (?:the (?:company|paper|newsroom|outlet|organi[sz]ation)|(?:the )?(?-i:[A-Z]))"
    r"|(?:this|my) (?:e-?mail )?(?:address|mailbox|inbox|account) is no longer (?:active|monitored|in use"
    r"|being monitored)"
    r"|\bhas (?:now )?left (?:the )?(?-i:[A-Z])|(?:i've|i have) moved (?:on )?to (?:the )?(?-i:[A-Z])"
    r"|(?:is|are) no longer (?:with|at|working (?:at|for))|my new (?:e-?mail|address|email address) is"
    r"|nicht mehr (?:bei|für|im unternehmen|in der redaktion|tätig)\b"
    r"|(?:my|her|his) last day (?:at|with)|i have moved on from|i(?:'ve| have) joined"
    r"|(?:bin|ist) nicht mehr (?:bei|für|im unternehmen|in der redaktion|tätig)|arbeite nicht mehr (?:bei|für)"
    r"|(?:habe|hat) (?:das unternehmen|die redaktion|den verlag|(?-i:[A-Z])\S*) verlassen"
    r"|diese (?:e-?mail-?)?adresse (?:ist nicht mehr aktiv|wird nicht mehr gelesen)"
    r"|ne (?:fais|fait|travaille|suis|est) plus (?:partie|pour|chez|à|au sein)|(?:j'ai|a) quitté"
    r"|cette adresse (?:e-?mail |électronique )?n'est plus (?:active|utilisée|valide|consultée)"
    r"|ya no (?:trabajo|trabaja|formo parte|forma parte|estoy en|está en|colaboro|colabora)"
    r"|(?:he|ha) dejado (?:de trabajar|la empresa|el periódico|la redacción|(?-i:[A-Z]))"
    r"|esta (?:dirección|cuenta) (?:de correo )?(?:ya no está activa|ya no se consulta|no está activa))",
    _F,
)

#: wrong person, wrong desk, not their beat
WRONG_BEAT = re.compile(
    r"\b(?:not my (?:beat|area|field|patch|remit|topic|department)|(?:i|we) (?:don't|do not"
    r"|no longer) (?:cover|write about|report on)"
    r"|wrong (?:person|desk|contact|department|editor|reporter)|not the (?:right|best|correct) (?:person"
    r"|contact|desk)"
    r"|outside (?:my|our) (?:beat|coverage|remit)|i only cover|i cover only"
    r"|nicht (?:mein|unser) (?:ressort|thema|fachgebiet|bereich)|nicht zuständig|falsche(?:r"
    r"|n)? (?:ansprechpartner|person|ressort)"
    r"|(?:ne|n') ?(?:couvre|traite) pas|pas (?:mon|notre) (?:domaine|sujet|rubrique)|pas la bonne (?:personne"
    r"|rubrique)"
    r"|(?:ne suis|n'est) pas (?:en charge|le bon interlocuteur|la bonne interlocutrice)"
    r"|no (?:cubro|cubrimos|es mi (?:área|sección|tema|campo))|no soy la persona (?:adecuada|indicada|correcta)"
    r"|persona equivocada)",
    _F,
)

#: remove me, unsubscribe, stop sending
UNSUBSCRIBE = re.compile(
    r"\b(?:unsubscribe(?! link)|remove me|take me off|(?:please )?remove (?:my (?:e-?mail|address|name)|this address)"
    r"|stop (?:sending|emailing|e-mailing|mailing)|do not (?:contact|email|e-mail) me|don't (?:contact|email"
    r"|e-mail) me"
    r"|(?:off|from) your (?:mailing |distribution |press )?list|opt(?:-| )out"
    r"|aus (?:dem|ihrem|eurem) verteiler"
    r"|abmelden|austragen|(?:bitte )?(?:entfernen sie|nehmen sie) mich|keine (?:weiteren )?(?:e-?mails|mails"
    r"|pressemitteilungen)"
    r"|désinscri(?:re|vez|ption)|désabonn|retirez[- ]moi|ne plus recevoir|supprimez[- ]moi"
    r"|darme de baja|dar de baja|bórrenme|borrarme|elimín(?:en|eme)|no (?:me )?(?:envíen|manden) más|quitarme de)",
    _F,
)

#: words that announce the new outlet or address of someone who moved
_NEW_PLACE = (
    r"(?:now (?:at|with|working (?:at|for)|writing for)|(?:i have|i've|have|has) joined|moved to|new (?:role"
    r"|position|job) (?:at|with)"
    r"|jetzt (?:bei|für)|nun bei|wechsel(?:e|t)? zu|neu bei"
    r"|désormais (?:chez|à|au)|maintenant (?:chez|à|au)|rejoint"
    r"|ahora (?:en|trabajo en|estoy en)|me he incorporado a|nuevo puesto en)"
)
NEW_OUTLET = re.compile(
    "(?i:"
    + _NEW_PLACE
    + r")\s+(?:the\s+)?(?P<outlet>[A-ZÄÖÜÉÈÀÁÍÓÚÑ][\w&'’\-]*"
    + r"(?:[ \t]+(?:[A-ZÄÖÜÉÈÀÁÍÓÚÑ&][\w&'’\-]*|of|de|der|du|la|le|el|des|the|am|und|y|et))*)"
)
#: words after which the new address is written
NEW_ADDRESS_CUE = re.compile(
    r"(?:new (?:e-?mail|address|contact)|reach me at|contact me at|write to me at|now at|please (?:use"
    r"|write to|contact)"
    r"|neue (?:e-?mail-?)?adresse|erreichbar unter|bitte (?:an|wenden sie sich an)"
    r"|nouvelle adresse|écrivez[- ]moi à|joignable à|veuillez (?:écrire|contacter)"
    r"|nueva dirección|nuevo correo|escríbeme a|pueden (?:escribirme|contactarme) en|contactar a)",
    _F,
)
EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")
