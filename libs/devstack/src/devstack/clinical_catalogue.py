"""The clinical vocabulary demo SOAP notes are written from: conditions and visit reasons.

Plain data, kept apart from the note writer so the writer reads as the shape of a note.
Medications and plans are ordinary first-line choices, enough to look real to a reader
and to give the summarizer something to summarize; not clinical advice.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ChronicCondition:
    """A long-term problem a patient carries from note to note."""

    name: str
    icd10: str
    min_age: int
    medication: str
    complaints: tuple[str, ...]  # what the patient reports at a follow-up
    findings: tuple[str, ...]  # what the clinician finds or measures
    statuses: tuple[str, ...]  # how the problem is going
    plans: tuple[str, ...]


@dataclass(frozen=True)
class AcuteVisit:
    """A one-off reason to be seen."""

    reason: str
    min_age: int
    max_age: int
    history: tuple[str, ...]
    findings: tuple[str, ...]
    assessment: str
    plans: tuple[str, ...]


CHRONIC_CONDITIONS: tuple[ChronicCondition, ...] = (
    ChronicCondition(
        "Essential hypertension", "I10", 30, "lisinopril 10 mg once daily",
        ("No headaches or chest pain; checks blood pressure at home, readings 130s/80s.",
         "Occasional morning headaches; home readings up to 150/95."),
        ("No peripheral oedema.", "Heart sounds normal, no murmurs."),
        ("well controlled", "above target", "improving on current dose"),
        ("Continue lisinopril; home BP log; low-salt diet.",
         "Increase lisinopril to 20 mg daily; BMP in 2 weeks to check potassium and creatinine."),
    ),
    ChronicCondition(
        "Type 2 diabetes mellitus without complications", "E11.9", 30,
        "metformin 1000 mg twice daily",
        ("Tolerating metformin, mild loose stools. Fasting sugars 120-160 mg/dL.",
         "No polyuria or polydipsia. Walking 30 minutes most days."),
        ("Monofilament sensation intact bilaterally.", "HbA1c 7.4 %.", "HbA1c 8.1 %."),
        ("at goal", "HbA1c above goal", "stable"),
        ("Continue metformin; annual retinal exam and urine albumin/creatinine ratio.",
         "Add empagliflozin 10 mg daily; dietitian referral; repeat HbA1c in 3 months."),
    ),
    ChronicCondition(
        "Hyperlipidaemia", "E78.5", 35, "atorvastatin 20 mg at night",
        ("No muscle aches on statin.", "Asks whether the statin is still needed."),
        ("LDL 2.4 mmol/L.", "LDL 3.6 mmol/L on last panel."),
        ("at target", "LDL above target"),
        ("Continue atorvastatin; fasting lipid panel in 12 months.",
         "Increase atorvastatin to 40 mg; recheck lipids and ALT in 8 weeks."),
    ),
    ChronicCondition(
        "Mild persistent asthma", "J45.30", 4,
        "fluticasone 110 mcg 2 puffs twice daily, albuterol as needed",
        ("Using albuterol twice a week, more with colds.", "Night cough once a week."),
        ("Scattered expiratory wheeze.", "Lungs clear, peak flow 85 % of predicted."),
        ("well controlled", "not well controlled"),
        ("Continue controller inhaler; asthma action plan reviewed; spacer technique checked.",
         "Step up to fluticasone/salmeterol; review in 4 weeks."),
    ),
    ChronicCondition(
        "Chronic obstructive pulmonary disease", "J44.9", 45, "tiotropium 18 mcg inhaled daily",
        ("Breathless walking uphill; no increase in sputum.", "Two flare-ups this winter."),
        ("Reduced breath sounds at the bases, prolonged expiration.", "SpO2 93 % at rest."),
        ("stable", "frequent exacerbations"),
        ("Continue tiotropium; pulmonary rehabilitation referral; influenza vaccine given.",
         "Add inhaled corticosteroid; rescue pack of prednisolone with written instructions."),
    ),
    ChronicCondition(
        "Hypothyroidism", "E03.9", 18, "levothyroxine 75 mcg daily",
        ("Energy improved since dose change.", "Still tired, some weight gain, feels cold."),
        ("TSH 2.1 mIU/L.", "TSH 6.8 mIU/L."),
        ("euthyroid on replacement", "under-replaced"),
        ("Continue levothyroxine; TSH in 12 months.",
         "Increase levothyroxine to 88 mcg; TSH in 6 weeks."),
    ),
    ChronicCondition(
        "Gastro-oesophageal reflux disease", "K21.9", 18, "omeprazole 20 mg before breakfast",
        ("Heartburn after large meals, better on omeprazole.", "No dysphagia or weight loss."),
        ("Abdomen soft, mild epigastric tenderness.",),
        ("symptoms controlled", "breakthrough symptoms"),
        ("Continue PPI; avoid late meals; trial step-down in 8 weeks.",),
    ),
    ChronicCondition(
        "Major depressive disorder (single episode)", "F32.9", 14, "sertraline 50 mg daily",
        ("Mood better, sleeping 7 hours; PHQ-9 today 8.", "Low mood persists; PHQ-9 today 15."),
        ("Affect reactive, no suicidal ideation.", "Appears tired, speech normal."),
        ("improving", "partial response"),
        ("Continue sertraline; counselling sessions ongoing; review in 6 weeks.",
         "Increase sertraline to 100 mg; safety plan reviewed; review in 2 weeks."),
    ),
    ChronicCondition(
        "Primary osteoarthritis of knee", "M17.10", 50,
        "paracetamol 1 g up to four times daily",
        ("Knee pain after walking 20 minutes; morning stiffness under 30 minutes.",),
        ("Crepitus and medial joint line tenderness, no effusion.",),
        ("stable", "worsening function"),
        ("Physiotherapy for quadriceps strengthening; weight management.",
         "Trial topical diclofenac; orthopaedic referral if no better in 3 months."),
    ),
    ChronicCondition(
        "Atrial fibrillation", "I48.91", 55,
        "apixaban 5 mg twice daily, metoprolol 25 mg twice daily",
        ("Occasional palpitations, no syncope or bleeding.",),
        ("Irregularly irregular pulse.", "ECG: atrial fibrillation, rate 78."),
        ("rate controlled", "rate above target"),
        ("Continue anticoagulation and rate control; CHA2DS2-VASc reviewed; renal function yearly.",
         "Increase metoprolol to 50 mg twice daily; Holter monitor."),
    ),
)  # fmt: skip

ACUTE_VISITS: tuple[AcuteVisit, ...] = (
    AcuteVisit(
        "sore throat, runny nose and cough for 3 days", 1, 120,
        ("Low-grade fever at home, eating and drinking normally.",),
        ("Pharynx mildly erythematous, no exudate; lungs clear.",),
        "Acute upper respiratory infection (J06.9), viral",
        ("Supportive care: fluids, rest, paracetamol; return if fever persists beyond 5 days.",),
    ),
    AcuteVisit(
        "burning on urination and frequency for 2 days", 16, 120,
        ("No flank pain, no fever.",),
        ("No costovertebral angle tenderness. Urine dipstick: leukocytes ++, nitrites +.",),
        "Acute cystitis (N30.00)",
        ("Nitrofurantoin 100 mg twice daily for 5 days; urine culture sent.",),
    ),
    AcuteVisit(
        "low back pain after lifting boxes 4 days ago", 18, 120,
        ("No leg weakness, numbness or bladder symptoms.",),
        ("Paraspinal tenderness L4-L5, straight leg raise negative, strength 5/5.",),
        "Acute low back strain (S39.012A)",
        ("Stay active; ibuprofen 400 mg three times daily with food for 7 days; heat.",),
    ),
    AcuteVisit(
        "right ear pain and fever since yesterday", 1, 12,
        ("Pulling at the ear, woke twice overnight.",),
        ("Right tympanic membrane bulging and erythematous.",),
        "Acute otitis media, right (H66.91)",
        ("Amoxicillin 80 mg/kg/day in two doses for 10 days; analgesia; review if no better in 48 h.",),  # noqa: E501
    ),
    AcuteVisit(
        "twisted left ankle playing football", 8, 70,
        ("Able to bear weight with pain.",),
        ("Swelling over the lateral malleolus; Ottawa ankle rules negative.",),
        "Sprain of left ankle (S93.402A)",
        ("RICE, compression bandage, ibuprofen; physiotherapy exercises after 72 h.",),
    ),
    AcuteVisit(
        "facial pressure and nasal congestion for 12 days", 12, 120,
        ("Symptoms worse after initial improvement.",),
        ("Maxillary sinus tenderness, purulent nasal discharge.",),
        "Acute bacterial sinusitis (J01.90)",
        ("Amoxicillin-clavulanate for 7 days; saline irrigation.",),
    ),
    AcuteVisit(
        "vomiting and diarrhoea since last night", 1, 120,
        ("Household contacts with similar symptoms; keeping fluids down.",),
        ("Mucous membranes moist, abdomen soft and non-tender.",),
        "Viral gastroenteritis (A08.4)",
        ("Oral rehydration; return for blood in stool or signs of dehydration.",),
    ),
    AcuteVisit(
        "itchy rash on both hands after starting a new job", 16, 120,
        ("Works as a cleaner, uses gloves intermittently.",),
        ("Erythematous scaly patches on the dorsal hands, no vesicles.",),
        "Irritant contact dermatitis (L24.9)",
        ("Emollients, nitrile gloves; hydrocortisone 1 % twice daily for 7 days.",),
    ),
    AcuteVisit(
        "parents for a routine well-baby check", 0, 2,
        ("Feeding well, wet nappies normal, sleeping in 3-hour stretches.",),
        ("Growth along the 50th centile; fontanelle soft; hips stable.",),
        "Routine child health examination (Z00.129)",
        ("Immunisations given as scheduled; safe-sleep advice; next check in 2 months.",),
    ),
    AcuteVisit(
        "no complaints, for an annual health check", 18, 120,
        ("No new concerns. Non-smoker, alcohol 4 units a week.",),
        ("Exam unremarkable.",),
        "Routine adult health examination (Z00.00)",
        ("Fasting lipids and glucose; vaccinations updated; age-appropriate screening discussed.",),
    ),
)  # fmt: skip

ALLERGIES = (
    "No known drug allergies",
    "No known drug allergies",
    "No known drug allergies",
    "Penicillin (rash)",
    "Sulfonamides (hives)",
    "Latex",
)
