"""Word lists behind domain and sensitivity detection, as plain data.

The domain vocabulary (phrase -> weight per domain) lives in `domain_terms.yaml`. Phrases are
written the way people type them; `signals.py` tokenises and stems both sides the same way, so
plurals, possessives and hyphenation ("x-rays", "driver's licence") match without listing every form.

Sensitivity terms map to (category, how a reason names it). Categories: phi (health), pii (personal
identifiers and personal financial records), credentials, confidential, media (things sensitive by
nature: medical scans, ID documents, payment cards). A term may carry several categories.
"""

from __future__ import annotations

from pathlib import Path

DOMAIN_TERMS_PATH = Path(__file__).with_name("domain_terms.yaml")


def load_domain_terms(path: Path = DOMAIN_TERMS_PATH) -> dict[str, dict[str, float]]:
    """domain -> {phrase: weight} from the YAML data file (weights group the phrases there)."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    data = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)
    return {
        str(domain): {str(phrase): float(weight) for weight, phrases in groups.items() for phrase in phrases}
        for domain, groups in data.items()
    }


#: Sensitivity terms: phrase -> (categories, display). Display text reads inside "the prompt names ...".
SENSITIVE_TERMS: dict[str, tuple[tuple[str, ...], str]] = {
    # health (PHI) and medical media
    "patient": (("phi",), "a patient"),
    "mri": (("phi", "media"), "an MRI"),
    "x-ray": (("phi", "media"), "an X-ray"),
    "xray": (("phi", "media"), "an X-ray"),
    "radiograph": (("phi", "media"), "a radiograph"),
    "ct scan": (("phi", "media"), "a CT scan"),
    "ct slice": (("phi", "media"), "a CT slice"),
    "pet scan": (("phi", "media"), "a PET scan"),
    "ultrasound": (("phi", "media"), "an ultrasound"),
    "sonogram": (("phi", "media"), "a sonogram"),
    "mammogram": (("phi", "media"), "a mammogram"),
    "ecg": (("phi", "media"), "an ECG"),
    "ekg": (("phi", "media"), "an EKG"),
    "eeg": (("phi", "media"), "an EEG"),
    "fundus photograph": (("phi", "media"), "a fundus photograph"),
    "dermoscopy": (("phi", "media"), "a dermoscopy image"),
    "histology": (("phi", "media"), "a histology slide"),
    "dicom": (("phi", "media"), "a DICOM study"),
    "medical record": (("phi",), "a medical record"),
    "hospital chart": (("phi",), "a hospital chart"),
    "discharge summary": (("phi",), "a discharge summary"),
    "lab report": (("phi",), "a lab report"),
    "lab result": (("phi",), "lab results"),
    "blood test": (("phi",), "a blood test"),
    "diagnosis": (("phi",), "a diagnosis"),
    "prescription": (("phi",), "a prescription"),
    "medication": (("phi",), "medication"),
    "symptom": (("phi",), "symptoms"),
    "mrn": (("phi", "pii"), "a medical record number"),
    "medical record number": (("phi", "pii"), "a medical record number"),
    "health insurance": (("phi", "pii"), "health insurance details"),
    # personal identifiers and ID documents
    "passport": (("pii", "media"), "a passport"),
    "driver's license": (("pii", "media"), "a driver's licence"),
    "driver's licence": (("pii", "media"), "a driver's licence"),
    "driving licence": (("pii", "media"), "a driving licence"),
    "driving license": (("pii", "media"), "a driving licence"),
    "id card": (("pii", "media"), "an ID card"),
    "identity card": (("pii", "media"), "an identity card"),
    "national id": (("pii", "media"), "a national ID"),
    "birth certificate": (("pii", "media"), "a birth certificate"),
    "residence permit": (("pii", "media"), "a residence permit"),
    "green card": (("pii", "media"), "a green card"),
    "social security": (("pii",), "a social security number"),
    "ssn": (("pii",), "a social security number"),
    "national insurance number": (("pii",), "a national insurance number"),
    "date of birth": (("pii",), "a date of birth"),
    "dob": (("pii",), "a date of birth"),
    "home address": (("pii",), "a home address"),
    "phone number": (("pii",), "a phone number"),
    "license plate": (("pii",), "a licence plate"),
    "licence plate": (("pii",), "a licence plate"),
    "number plate": (("pii",), "a licence plate"),
    "identify them": (("pii",), "a request to identify a person"),
    "who is this person": (("pii",), "a request to identify a person"),
    "identify this person": (("pii",), "a request to identify a person"),
    "facial recognition": (("pii",), "facial recognition"),
    "face recognition": (("pii",), "facial recognition"),
    "from their face": (("pii",), "a request to identify a person"),
    "personal details": (("pii",), "personal details"),
    "employee record": (("pii",), "an employee record"),
    "hr form": (("pii",), "an HR form"),
    # personal financial records and payment media
    "bank statement": (("pii",), "a bank statement"),
    "account number": (("pii",), "an account number"),
    "routing number": (("pii",), "a routing number"),
    "sort code": (("pii",), "a sort code"),
    "credit card": (("pii", "media"), "a payment card"),
    "debit card": (("pii", "media"), "a payment card"),
    "card number": (("pii",), "a card number"),
    "cvv": (("pii", "credentials"), "a card security code"),
    "payslip": (("pii",), "a payslip"),
    "pay stub": (("pii",), "a pay stub"),
    "tax return": (("pii",), "a tax return"),
    "w-2": (("pii",), "a W-2 form"),
    "credit report": (("pii",), "a credit report"),
    "mortgage": (("pii",), "a mortgage"),
    "loan terms": (("pii",), "loan terms"),
    "cheque": (("pii", "media"), "a cheque"),
    # credentials and secrets
    "password": (("credentials",), "a password"),
    "passcode": (("credentials",), "a passcode"),
    "passphrase": (("credentials",), "a passphrase"),
    "api key": (("credentials",), "an API key"),
    "api_key": (("credentials",), "an API key"),
    "aws key": (("credentials",), "an AWS key"),
    "access key": (("credentials",), "an access key"),
    "secret key": (("credentials",), "a secret key"),
    "private key": (("credentials",), "a private key"),
    "ssh key": (("credentials",), "an SSH key"),
    "access token": (("credentials",), "an access token"),
    "auth token": (("credentials",), "an auth token"),
    "bearer token": (("credentials",), "a bearer token"),
    "credentials": (("credentials",), "credentials"),
    "recovery phrase": (("credentials",), "a recovery phrase"),
    "seed phrase": (("credentials",), "a seed phrase"),
    "pin code": (("credentials",), "a PIN"),
    "2fa code": (("credentials",), "a 2FA code"),
    "one-time code": (("credentials",), "a one-time code"),
    # confidential material
    "confidential": (("confidential",), "confidential material"),
    "privileged": (("confidential",), "privileged material"),
    "attorney-client": (("confidential",), "attorney-client material"),
    "classified": (("confidential",), "classified material"),
    "top secret": (("confidential",), "classified material"),
    "internal use only": (("confidential",), "internal-only material"),
    "internal only": (("confidential",), "internal-only material"),
    "internal use": (("confidential",), "internal-only material"),
    "proprietary": (("confidential",), "proprietary material"),
    "trade secret": (("confidential",), "a trade secret"),
    "nda": (("confidential",), "an NDA"),
    "non-disclosure": (("confidential",), "a non-disclosure agreement"),
    "unreleased": (("confidential",), "unreleased material"),
    "under embargo": (("confidential",), "embargoed material"),
    "do not share": (("confidential",), "material marked do-not-share"),
    "do not distribute": (("confidential",), "material marked do-not-distribute"),
    "not for distribution": (("confidential",), "material marked not-for-distribution"),
    "divorce": (("confidential",), "a divorce matter"),
    "custody": (("confidential",), "a custody matter"),
    "sealed records": (("confidential",), "sealed records"),
    "minimum payment": (("pii",), "a personal statement"),
    "payment due": (("pii",), "a personal statement"),
    "business card": (("pii",), "a business card"),
    "vault combination": (("credentials",), "a lock combination"),
    "safe combination": (("credentials",), "a lock combination"),
    "lock combination": (("credentials",), "a lock combination"),
    "leaked": (("confidential",), "leaked material"),
    "internal": (("confidential",), "internal material"),
    "criminal record": (("confidential", "pii"), "a criminal record"),
    "police report": (("confidential", "pii"), "a police report"),
    "account balance": (("pii",), "an account balance"),
    "bank details": (("pii",), "bank details"),
    "banking app": (("pii",), "a banking app"),
    "tax id": (("pii",), "a tax ID"),
    "card transaction": (("pii",), "card transactions"),
    "mrz": (("pii", "media"), "a passport's machine-readable zone"),
    "travel document": (("pii", "media"), "a travel document"),
    "id badge": (("pii",), "an ID badge"),
    "employee id": (("pii",), "an employee ID"),
    "student id": (("pii", "media"), "a student ID"),
    "insurance card": (("pii", "media"), "an insurance card"),
    "fingerprint": (("pii",), "a fingerprint"),
    "biometric": (("pii",), "biometric data"),
    "medical history": (("phi",), "a medical history"),
    "health record": (("phi",), "a health record"),
    "env file": (("credentials",), "an .env file"),
    "dotenv": (("credentials",), "an .env file"),
    "connection string": (("credentials",), "a connection string"),
    "login details": (("credentials",), "login details"),
    "login credentials": (("credentials",), "login credentials"),
    "username and password": (("credentials",), "a username and password"),
    "pass word": (("credentials",), "a password"),
    "badge number": (("pii",), "a badge number"),
    "employee name": (("pii",), "an employee's name"),
    "full name": (("pii",), "a full name"),
    "name and address": (("pii",), "a name and address"),
    "timesheet": (("pii",), "a timesheet"),
    "payee": (("pii",), "payee details"),
    "medical chart": (("phi",), "a medical chart"),
    "wifi key": (("credentials",), "a Wi-Fi key"),
    "iban": (("pii",), "an IBAN"),
    "bic": (("pii",), "bank codes"),
    "swift code": (("pii",), "bank codes"),
    "pay slip": (("pii",), "a payslip"),
    "restraining order": (("confidential", "pii"), "a restraining order"),
    "restricted": (("confidential",), "restricted material"),
    "board minutes": (("confidential",), "board minutes"),
    "mugshot": (("pii",), "a mugshot"),
    "match the face": (("pii",), "face matching"),
    "backup code": (("credentials",), "backup codes"),
    "2fa": (("credentials",), "2FA codes"),
    "key file": (("credentials",), "a key file"),
    "pem": (("credentials",), "a key file"),
    "wifi password": (("credentials",), "a Wi-Fi password"),
    "network key": (("credentials",), "a network key"),
    "wpa2": (("credentials",), "a Wi-Fi key"),
    "aadhaar": (("pii", "media"), "an Aadhaar number"),
    "pan card": (("pii", "media"), "a PAN card"),
    "voter id": (("pii", "media"), "a voter ID"),
    "id number": (("pii",), "an ID number"),
    "identity number": (("pii",), "an identity number"),
    "tax file number": (("pii",), "a tax file number"),
    "bank transaction": (("pii",), "bank transactions"),
    "beneficiary": (("pii", "confidential"), "a beneficiary"),
    "private": (("confidential",), "material marked private"),
    "secret": (("confidential",), "a secret"),
    "sensitive": (("confidential",), "material the prompt calls sensitive"),
    "personal information": (("pii",), "personal information"),
    "personal data": (("pii",), "personal data"),
    "layoff": (("confidential",), "layoff plans"),
    "performance review": (("confidential", "pii"), "a performance review"),
    "disciplinary": (("confidential", "pii"), "a disciplinary matter"),
    "salaries": (("confidential",), "salary data"),
    # broader coverage (tuning round 6): addresses, names tied to records, codes, "not public" markers
    "address": (("pii",), "an address"),
    "addresses": (("pii",), "addresses"),
    "address label": (("pii",), "an address label"),
    "shipping label": (("pii",), "a shipping label"),
    "where they live": (("pii",), "where a person lives"),
    "where he lives": (("pii",), "where a person lives"),
    "where she lives": (("pii",), "where a person lives"),
    "their home": (("pii",), "a person's home"),
    "photo id": (("pii", "media"), "a photo ID"),
    "my id": (("pii", "media"), "an ID document"),
    "this id": (("pii", "media"), "an ID document"),
    "their id": (("pii", "media"), "an ID document"),
    "state id": (("pii", "media"), "a state ID"),
    "government id": (("pii", "media"), "a government ID"),
    "id photo": (("pii", "media"), "an ID photo"),
    "identification": (("pii",), "identification"),
    "staff number": (("pii",), "a staff number"),
    "employee number": (("pii",), "an employee number"),
    "member id": (("pii",), "a member ID"),
    "membership number": (("pii",), "a membership number"),
    "customer number": (("pii",), "a customer number"),
    "policy number": (("pii",), "a policy number"),
    "patient id": (("phi", "pii"), "a patient ID"),
    "nhs number": (("phi", "pii"), "an NHS number"),
    "student number": (("pii",), "a student number"),
    "report card": (("pii",), "a report card"),
    "class register": (("pii",), "a class register"),
    "student grades": (("pii",), "students' grades"),
    "my grades": (("pii",), "the user's grades"),
    "names and emails": (("pii",), "names and email addresses"),
    "names and addresses": (("pii",), "names and addresses"),
    "their name": (("pii",), "a person's name"),
    "his name": (("pii",), "a person's name"),
    "her name": (("pii",), "a person's name"),
    "my name": (("pii",), "the user's name"),
    "owner name": (("pii",), "an owner's name"),
    "email address": (("pii",), "an email address"),
    "contact details": (("pii",), "contact details"),
    "contact info": (("pii",), "contact details"),
    "mobile number": (("pii",), "a phone number"),
    "signature": (("pii",), "a signature"),
    "visiting card": (("pii",), "a business card"),
    "firearm licence": (("pii",), "a firearm licence"),
    "alarm code": (("credentials",), "an alarm code"),
    "door code": (("credentials",), "a door code"),
    "access code": (("credentials",), "an access code"),
    "gate code": (("credentials",), "a gate code"),
    "security code": (("credentials",), "a security code"),
    "verification code": (("credentials",), "a verification code"),
    "token": (("credentials",), "a token"),
    "not public": (("confidential",), "non-public material"),
    "aren't public": (("confidential",), "non-public material"),
    "isn't public": (("confidential",), "non-public material"),
    "not yet public": (("confidential",), "non-public material"),
    "do not forward": (("confidential",), "material marked do-not-forward"),
    "don't share": (("confidential",), "material marked do-not-share"),
    "don't forward": (("confidential",), "material marked do-not-forward"),
    "not to be shared": (("confidential",), "material marked do-not-share"),
    "under nda": (("confidential",), "material under NDA"),
    "embargo": (("confidential",), "embargoed material"),
    "need to know": (("confidential",), "need-to-know material"),
    "secret project": (("confidential",), "a secret project"),
    "family photo": (("confidential",), "a private family photo"),
    "incident report": (("confidential",), "an incident report"),
    "security audit": (("confidential",), "a security audit"),
    "hr": (("pii", "confidential"), "HR material"),
    "medical letter": (("phi",), "a medical letter"),
    "discharge letter": (("phi",), "a discharge letter"),
    "hospital letter": (("phi",), "a hospital letter"),
    "doctor's letter": (("phi",), "a doctor's letter"),
    "test result": (("phi",), "test results"),
    "biopsy": (("phi",), "a biopsy"),
    "tattoo removal": (("phi",), "a medical procedure"),
    "removal clinic": (("phi",), "a clinic visit"),
    "court letter": (("confidential",), "a court letter"),
    "court order": (("confidential",), "a court order"),
    "summons": (("confidential",), "a court summons"),
    "settlement": (("confidential",), "a settlement"),
    "immigration": (("pii",), "immigration papers"),
    "visa application": (("pii",), "a visa application"),
    "customer names": (("pii",), "customers' names"),
    "employee names": (("pii",), "employees' names"),
    "student names": (("pii",), "students' names"),
    "staff names": (("pii",), "staff names"),
    "patient names": (("phi", "pii"), "patients' names"),
    "list names": (("pii",), "a list of people's names"),
    "owner names": (("pii",), "owners' names"),
    "pin number": (("credentials",), "a PIN"),
    "my pin": (("credentials",), "a PIN"),
}

#: Legal triggers about public texts (laws, published policies): the rest (contracts, court papers,
#: wills, police reports) are someone's private affairs and keep a legal request on this machine.
PUBLIC_LEGAL: frozenset[str] = frozenset({
    "terms and conditions", "terms of service", "terms of use", "privacy policy", "gdpr", "statute", "law",
    "regulation", "regulatory", "compliance", "copyright", "copyright notice", "trademark", "patent", "legal code",
    "ordinance", "zoning", "lawful", "illegal", "legally", "enforceable", "jurisdiction", "constitution",
    "amendment", "rights", "legal", "eula", "license agreement", "licensing", "disclaimer", "legal notice",
    "intellectual property", "policy", "section", "valid", "citation", "licence", "license", "infringement",
    "infringe", "registration certificate", "filing",
})

#: Words that tie health terms to a real person ("my", "patient", "62-year-old"): PHI, not trivia.
PERSON_WORDS: frozenset[str] = frozenset(
    "my me i i'm his her their patient patients son daughter wife husband mother father mom mum dad child "
    "baby kid friend grandma grandpa grandmother grandfather brother sister client mr mrs ms miss "
    "he she him them we our us mine myself toddler infant newborn girlfriend boyfriend partner fiance fiancee "
    "spouse uncle aunt niece nephew cousin nan nana granny grandson granddaughter colleague coworker boss "
    "neighbour neighbor roommate flatmate ex stepson stepdaughter twins parent parents grandparent".split()
)

#: With "name" in the prompt, any of these make it a request about an identifiable person.
IDENTITY_WORDS: frozenset[str] = frozenset(
    "number address birth id badge phone email account ssn passport license licence signature dob".split()
)

#: "my ___", "patient's ___": a possessor within three words of one of these is a personal record.
POSSESSORS: frozenset[str] = frozenset(
    "my our his her their patient client employee customer son daughter wife husband mother father mom mum "
    "dad child kid baby friend grandma grandpa grandmother grandfather brother sister tenant applicant".split()
)
PERSONAL_RECORDS: frozenset[str] = frozenset(
    "statement record records result results report bill card id license licence lease contract form "
    "application letter file document chart scan test prescription policy account paperwork certificate "
    "passport visa payslip paystub salary loan mortgage transcript diagnosis insurance claim tax taxes "
    "balance transactions bank debt fine ticket case benefits pension will".split()
)

#: Near a bare number, these make it a phone number or an SSN rather than an order number.

#: Latency cues in the prompt (explicit hints and budgets always win over these).
LATENCY_TERMS: dict[str, str] = {
    "real-time": "realtime", "realtime": "realtime", "live feed": "realtime", "live stream": "realtime",
    "live camera": "realtime", "live video": "realtime", "every frame": "realtime",
    "quick": "low-latency", "quickly": "low-latency", "asap": "low-latency", "urgent": "low-latency",
    "urgently": "low-latency", "immediately": "low-latency", "right now": "low-latency",
    "fast answer": "low-latency", "as fast as possible": "low-latency", "in a hurry": "low-latency",
    "batch": "batch", "overnight": "batch", "no rush": "batch", "in bulk": "batch", "whenever": "batch",
    "bulk": "batch", "backlog": "batch", "archive": "batch",
}

#: Task cues: phrase -> task. When several match, TASK_ORDER decides.
TASK_TERMS: dict[str, str] = {
    "ocr": "ocr", "transcribe": "ocr", "transcription": "ocr", "read the": "ocr", "read": "ocr",
    "extract text": "ocr", "extract the text": "ocr", "what does it say": "ocr", "what is written": "ocr",
    "written": "ocr", "copy the text": "ocr", "handwriting": "ocr", "handwritten": "ocr", "text in": "ocr",
    "compare": "compare", "comparison": "compare", "difference between": "compare", "versus": "compare",
    "vs": "compare", "spot the difference": "compare", "which of these": "compare", "which is better": "compare",
    "detect": "detect", "find all": "detect", "locate": "detect", "count": "detect", "how many": "detect",
    "bounding box": "detect", "spot": "detect", "where is": "detect", "where are": "detect",
    "caption": "caption", "alt text": "caption", "title for": "caption", "tagline": "caption",
    "why": "reasoning", "explain": "reasoning", "reason": "reasoning", "step by step": "reasoning",
    "infer": "reasoning", "what will happen": "reasoning", "calculate": "reasoning", "compute": "reasoning",
    "solve": "reasoning", "should i": "reasoning", "is it safe": "reasoning", "predict": "reasoning",
    "describe": "describe", "description": "describe", "what's in": "describe", "what is in": "describe",
    "what do you see": "describe", "tell me about": "describe", "summarize": "describe",
    "summarise": "describe", "summary": "describe",
}

TASK_ORDER: tuple[str, ...] = ("ocr", "compare", "detect", "caption", "reasoning", "describe")

#: Tie-breaking when two domains score the same: the more privacy-relevant domain wins.
DOMAIN_ORDER: tuple[str, ...] = (
    "medical", "financial", "legal", "security", "technical", "educational", "creative", "general",
)
